//! The endpoint exchange at the top of the mesh build: through a rendezvous (the launcher's or
//! our own) or through the PMI key-value store.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Instant;

use super::Peers;
use crate::env::BootConfig;
use crate::error::{Error, Result};
use crate::rendezvous::{self, RendezvousServer};
use crate::token::JobToken;
use crate::wire::Endpoint;

/// Publishes this rank's endpoint (made by `make_endpoint` from the local address of the route
/// towards the launcher) and returns the job token and every rank's endpoint.
pub(crate) fn endpoints(
    cfg: &BootConfig,
    deadline: Instant,
    make_endpoint: impl FnOnce(IpAddr) -> Result<Endpoint>,
) -> Result<(JobToken, Vec<Endpoint>)> {
    let (rank, size) = (cfg.rank, cfg.size);
    match &cfg.peers {
        Peers::Rendezvous => {
            let (_me, table) =
                rendezvous::join(cfg.rendezvous, cfg.token, rank, size, deadline, make_endpoint)?;
            Ok((cfg.token, table))
        }
        Peers::ServeRendezvous => {
            let any: IpAddr = if cfg.rendezvous.is_ipv4() {
                Ipv4Addr::UNSPECIFIED.into()
            } else {
                Ipv6Addr::UNSPECIFIED.into()
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let server = RendezvousServer::bind(
                SocketAddr::new(any, cfg.rendezvous.port()),
                size,
                cfg.token,
                left,
            )
            .map_err(|e| Error::Bootstrap {
                rank,
                msg: format!(
                    "serving the rendezvous RMPI_RENDEZVOUS={} (must be a free port on rank 0's \
                     host): {e}",
                    cfg.rendezvous
                ),
            })?;
            let server = server.spawn();
            let joined =
                rendezvous::join(cfg.rendezvous, cfg.token, rank, size, deadline, make_endpoint);
            // The server has answered every rank (or failed) by the time our join returns.
            let served = server.join().unwrap_or_else(|_| {
                Err(Error::Bootstrap { rank, msg: "the rendezvous thread panicked".into() })
            });
            let (_me, table) = joined?;
            served?;
            Ok((cfg.token, table))
        }
        Peers::Pmi(session) => {
            let ip = route_local(cfg.rendezvous.ip()).map_err(|e| Error::Bootstrap {
                rank,
                msg: format!("finding the address to advertise (set RMPI_IFACE): {e}"),
            })?;
            let me = make_endpoint(ip)?;
            crate::pmi::exchange(session, rank, size, &me, deadline)
        }
    }
}

/// The local address the kernel would use to reach `to` (a connected UDP socket sends nothing).
fn route_local(to: IpAddr) -> std::io::Result<IpAddr> {
    let any: IpAddr =
        if to.is_ipv4() { Ipv4Addr::UNSPECIFIED.into() } else { Ipv6Addr::UNSPECIFIED.into() };
    let s = UdpSocket::bind(SocketAddr::new(any, 0))?;
    s.connect(SocketAddr::new(to, 9))?;
    Ok(s.local_addr()?.ip())
}
