//! The endpoint exchange at the top of the mesh build: through a rendezvous (the launcher's or
//! our own) or through the PMI key-value store.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Instant;

use super::Peers;
use crate::directory::{client, Remote};
use crate::env::{BootConfig, Connect};
use crate::error::{Error, Result};
use crate::rendezvous::{self, RendezvousServer};
use crate::token::JobToken;
use crate::wire::Endpoint;

/// Publishes this rank's endpoint (made by `make_endpoint` from the local address of the route
/// towards the launcher) and returns the job token and every rank's endpoint. Under the
/// directory or PMI with connections on demand, the endpoints of other hosts' ranks are
/// placeholders (their host name only) and the [`Remote`] says where to look them up.
pub(crate) fn endpoints(
    cfg: &BootConfig,
    deadline: Instant,
    make_endpoint: impl FnOnce(IpAddr) -> Result<Endpoint>,
) -> Result<(JobToken, Vec<Endpoint>, Option<Remote>)> {
    match &cfg.peers {
        Peers::Directory(at) => return directory(cfg, *at, deadline, make_endpoint),
        Peers::Pmi(session) => {
            let ip = route_local(cfg.rendezvous.ip()).map_err(|e| Error::Bootstrap {
                rank: cfg.rank,
                msg: format!("finding the address to advertise (set RMPI_IFACE): {e}"),
            })?;
            let me = make_endpoint(ip)?;
            let lazy = cfg.connect == Connect::Lazy;
            return crate::pmi::exchange(session, cfg.rank, cfg.size, &me, lazy, deadline);
        }
        _ => {}
    }
    let (token, table) = table(cfg, deadline, make_endpoint)?;
    Ok((token, table, None))
}

fn directory(
    cfg: &BootConfig,
    at: SocketAddr,
    deadline: Instant,
    make_endpoint: impl FnOnce(IpAddr) -> Result<Endpoint>,
) -> Result<(JobToken, Vec<Endpoint>, Option<Remote>)> {
    let (rank, size) = (cfg.rank, cfg.size);
    let fail = |msg: String| Error::Bootstrap { rank, msg };
    let ip = route_local(cfg.rendezvous.ip())
        .map_err(|e| fail(format!("finding the address to advertise (set RMPI_IFACE): {e}")))?;
    let me = make_endpoint(ip)?;
    let go = client::register(at, cfg.token, rank, size, &me, deadline)
        .map_err(|e| fail(format!("registering with this host's agent at {at}: {e}")))?;
    let host_of: Arc<[u16]> = go.placement.host_of().into();
    let hosts = go.placement.hosts;
    let nowhere = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0);
    let mut table: Vec<Endpoint> = host_of
        .iter()
        .map(|h| Endpoint { addr: nowhere, host: hosts[*h as usize].label.clone(), shm: None })
        .collect();
    for (r, e) in go.local {
        table[r as usize] = e;
    }
    let remote = Remote { host_of, hosts, mine: go.host, pmi: None };
    if cfg.connect == Connect::Lazy {
        return Ok((cfg.token, table, Some(remote)));
    }
    // The whole mesh now: every host's entries, one look-up per host.
    for (h, info) in remote.hosts.iter().enumerate().filter(|(h, _)| *h != go.host as usize) {
        let got =
            client::lookup(info.directory, cfg.token, rank, h as u16, &remote.host_of, deadline)
                .map_err(|e| {
                    fail(format!(
                        "looking up the ranks of {} at its directory {}: {e}",
                        info.label, info.directory
                    ))
                })?;
        for (r, e) in got {
            table[r as usize] = e;
        }
    }
    Ok((cfg.token, table, None))
}

fn table(
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
        Peers::Pmi(_) | Peers::Directory(_) => Err(Error::Bootstrap {
            rank,
            msg: "directory or PMI bootstrap in the table path".into(),
        }),
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
