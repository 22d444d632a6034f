//! Joining the job: listen, join the rendezvous, then either hand the listener to the engine,
//! which connects on demand (`RMPI_CONNECT=lazy`, the default: see `engine/connect.rs`), or build
//! the full mesh now (`eager`): connect to lower ranks, accept higher.
//!
//! Every connection opens with a [`Hello`] each way, which carries the eager credit its sender
//! grants the other (see `engine/flow.rs`). The accepting side refuses anything that is
//! not a valid hello from an expected peer of this job, logs it with the peer's address, and
//! goes on waiting for the real peers. The eager mesh costs each rank O(p) work.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::accept::Acceptor;
use crate::deadline::read_exact_by;
use crate::engine::shm;
use crate::engine::Lazy;
use crate::env::{BootConfig, Connect};
use crate::error::{Error, Result};
use crate::rendezvous::list;
use crate::token::JobToken;
use crate::wire::{Endpoint, Hello, HelloKind, HELLO_LEN};

/// How long an accepted connection may take to send its hello.
const PEER_HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The connected mesh: one stream per peer on another host, with the credit that peer grants
/// (`None` at our own rank, at the ranks in `shm`, and at every rank when `lazy` connects on
/// demand), this host's shared memory, and every rank's endpoint.
pub(crate) struct Mesh {
    pub(crate) streams: Vec<Option<(TcpStream, u64)>>,
    pub(crate) lazy: Option<Lazy>,
    pub(crate) shm: Option<shm::Group>,
    pub(crate) endpoints: Vec<Endpoint>,
}

/// Joins the job described by `cfg`.
pub(crate) fn build(cfg: &BootConfig) -> Result<Mesh> {
    let deadline = Instant::now() + cfg.boot_timeout;
    let (rank, size) = (cfg.rank, cfg.size);
    let fail = |msg: String| Error::Bootstrap { rank, msg };
    let listener = bind_listener(cfg)?;
    let port = listener.local_addr().map_err(|e| Error::io("listener address", e))?.port();
    let host = cfg.host_label.clone().unwrap_or_else(hostname);
    let advertise = cfg.advertise.clone();
    // An interface or network that is not there is known now: say so before waiting for the
    // rendezvous (only the default choice needs the route to it).
    if advertise != crate::addr::AddrSelector::RouteToRendezvous {
        advertise
            .resolve(Ipv4Addr::UNSPECIFIED.into())
            .map_err(|e| Error::Env { var: crate::env::IFACE, msg: e })?;
    }
    // What this rank grants each peer, announced in its hellos and its shared-memory offer.
    let grant = crate::engine::grant_from_env(size)?;
    let offer =
        if cfg.shm { shm::Offer::new(u32::try_from(grant).unwrap_or(u32::MAX)) } else { None };
    let shm_offer = offer.as_ref().map(|o| o.wire);
    let (token, endpoints, remote) =
        crate::launch::exchange::endpoints(cfg, deadline, |route_ip| {
            let ip = advertise
                .resolve(route_ip)
                .map_err(|e| Error::Env { var: crate::env::IFACE, msg: e })?;
            Ok(Endpoint { addr: SocketAddr::new(ip, port), host: host.clone(), shm: shm_offer })
        })?;

    // Ranks on this host are reached through shared memory, the others through TCP.
    let local = shm::members(rank, &endpoints);
    let tcp = |j: &usize| !local.contains(j);
    if cfg.connect == Connect::Lazy {
        // Ranks of other hosts under the directory have no address yet: looked up at first dial.
        let known = |j: &usize| remote.as_ref().is_none_or(|d| d.host_of[*j] == d.mine);
        let addrs = (0..size)
            .map(|j| (j != rank && tcp(&j) && known(&j)).then(|| endpoints[j].addr))
            .collect();
        let lazy = Lazy {
            listener,
            token,
            addrs,
            peer_timeout: cfg.peer_timeout,
            cross_timeout: cfg.boot_timeout,
            remote,
            grant,
        };
        let shm = match offer {
            Some(o) => shm::join(o, token, rank, &endpoints, deadline)?,
            None => None,
        };
        let streams = (0..size).map(|_| None).collect();
        return Ok(Mesh { streams, lazy: Some(lazy), shm, endpoints });
    }
    // Accept from higher ranks in the background while we connect to lower ones.
    let expect_higher = (rank + 1..size).filter(tcp).count();
    let (tx, rx) = mpsc::channel::<(usize, (TcpStream, u64))>();
    let me = Me { token, rank, size, grant };
    let acceptor = if expect_higher > 0 {
        let greet = move |s, peer| greet_peer(s, peer, me, &tx);
        Some(Acceptor::spawn(&listener, format!("rank {rank}"), greet)?)
    } else {
        None
    };

    let mut streams: Vec<Option<(TcpStream, u64)>> = (0..size).map(|_| None).collect();
    for (j, ep) in endpoints.iter().enumerate().take(rank).filter(|(j, _)| tcp(j)) {
        let s = connect_peer(me, j, ep, deadline).map_err(|e| {
            fail(format!("connecting to rank {j} on {} ({}): {e}", ep.host, ep.addr))
        })?;
        streams[j] = Some(s);
    }

    let mut got = 0;
    while got < expect_higher {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((j, s)) => {
                if streams[j].is_some() {
                    tracing::warn!(peer = ?s.0.peer_addr().ok(), "rank {rank}: refused a second connection claiming to be rank {j}");
                    continue;
                }
                streams[j] = Some(s);
                got += 1;
            }
            Err(_) => {
                let missing: Vec<usize> =
                    (rank + 1..size).filter(|j| tcp(j) && streams[*j].is_none()).collect();
                let names: Vec<String> =
                    missing.iter().map(|j| format!("{j} ({})", endpoints[*j].host)).collect();
                return Err(fail(format!(
                    "ranks {} never connected within {:?}: {}",
                    list(&missing),
                    cfg.boot_timeout,
                    names.join(", ")
                )));
            }
        }
    }
    // Stop accepting: the listener closes with this function, so later strays are refused.
    drop(acceptor);
    if let Some(t) = cfg.peer_timeout {
        for (j, (s, _)) in streams.iter().enumerate().filter_map(|(j, s)| Some((j, s.as_ref()?))) {
            if let Err(e) = crate::liveness::watch(s, t) {
                tracing::warn!(rank, peer = j, "cannot arm keep-alive: {e}");
            }
        }
    }
    let shm = match offer {
        Some(o) => shm::join(o, token, rank, &endpoints, deadline)?,
        None => None,
    };
    Ok(Mesh { streams, lazy: None, shm, endpoints })
}

fn bind_listener(cfg: &BootConfig) -> Result<TcpListener> {
    let any: IpAddr = if cfg.rendezvous.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    match cfg.port_range {
        None => TcpListener::bind(SocketAddr::new(any, 0))
            .map(crate::accept::deep_backlog)
            .map_err(|e| Error::io(format!("rank {}: binding a listening socket", cfg.rank), e)),
        Some((lo, hi)) => {
            for port in lo..=hi {
                if let Ok(l) = TcpListener::bind(SocketAddr::new(any, port)) {
                    return Ok(crate::accept::deep_backlog(l));
                }
            }
            Err(Error::Bootstrap {
                rank: cfg.rank,
                msg: format!("no free port in RMPI_PORT_RANGE {lo}-{hi}"),
            })
        }
    }
}

/// Who this rank is, for its hellos.
#[derive(Clone, Copy)]
struct Me {
    token: JobToken,
    rank: usize,
    size: usize,
    /// The eager credit it grants each peer.
    grant: u64,
}

fn hello(me: Me) -> [u8; HELLO_LEN] {
    let (token, size, rank) = (*me.token.as_bytes(), me.size as u32, me.rank as u32);
    Hello { kind: HelloKind::Peer, token, size, rank, grant: me.grant }.encode()
}

/// Checks a peer hello; `Ok((rank, grant))` when it is one of ours.
fn check_hello(
    b: &[u8],
    token: JobToken,
    size: usize,
) -> std::result::Result<(usize, u64), String> {
    let h = Hello::decode(b).map_err(|e| e.to_string())?;
    if h.kind != HelloKind::Peer {
        return Err("not a peer hello".into());
    }
    if !token.matches(&h.token) {
        return Err("wrong job token (a rank of another job?)".into());
    }
    if h.size as usize != size {
        return Err(format!("world size {} differs from ours ({size})", h.size));
    }
    if h.rank as usize >= size {
        return Err(format!("rank {} out of range", h.rank));
    }
    Ok((h.rank as usize, h.grant))
}

fn connect_peer(
    me: Me,
    j: usize,
    ep: &Endpoint,
    deadline: Instant,
) -> std::result::Result<(TcpStream, u64), String> {
    let mut s = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("deadline passed".into());
        }
        match TcpStream::connect_timeout(&ep.addr, left.min(Duration::from_secs(5))) {
            Ok(s) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let _ = s.set_nodelay(true);
    s.write_all(&hello(me)).map_err(|e| format!("sending hello: {e}"))?;
    let mut b = [0u8; HELLO_LEN];
    read_exact_by(&s, &mut b, deadline).map_err(|e| format!("no hello back: {e}"))?;
    let (got, grant) = check_hello(&b, me.token, me.size)?;
    if got != j {
        return Err(format!("the peer says it is rank {got}, not {j}"));
    }
    let _ = s.set_read_timeout(None);
    Ok((s, grant))
}

/// Checks the hello of an accepted connection and answers it; hands a peer's stream to `tx`.
fn greet_peer(
    mut s: TcpStream,
    peer: SocketAddr,
    me: Me,
    tx: &mpsc::Sender<(usize, (TcpStream, u64))>,
) {
    let rank = me.rank;
    let mut b = [0u8; HELLO_LEN];
    let by = Instant::now() + PEER_HELLO_TIMEOUT;
    // Magic and version first: what does not speak this protocol is refused at once.
    let res = read_exact_by(&s, &mut b[..6], by)
        .map_err(|e| format!("no hello: {e}"))
        .and_then(|_| Hello::check_start(&b[..6]).map_err(|e| e.to_string()))
        .and_then(|_| read_exact_by(&s, &mut b[6..], by).map_err(|e| format!("no hello: {e}")))
        .and_then(|_| check_hello(&b, me.token, me.size))
        .and_then(|(j, grant)| {
            if j > rank {
                Ok((j, grant))
            } else {
                Err(format!("rank {j} should not connect to rank {rank}"))
            }
        });
    match res {
        Ok((j, grant)) => {
            if s.write_all(&hello(me)).is_ok() {
                let _ = s.set_read_timeout(None);
                let _ = s.set_nodelay(true);
                let _ = tx.send((j, (s, grant)));
            }
        }
        Err(why) => tracing::warn!(%peer, "rank {rank}: refused a connection: {why}"),
    }
}

/// This machine's host name (for messages), or "localhost" if it cannot be read.
pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length; gethostname NUL-terminates within it or truncates.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rendezvous::serve_on_loopback;

    #[test]
    fn ranks_listen_inside_the_port_range_and_advertise_their_route() {
        let token = JobToken::generate();
        let (rv, server) = serve_on_loopback(3, token, Duration::from_secs(10));
        let meshes: Vec<Mesh> = (0..3)
            .map(|r| {
                let mut cfg = BootConfig::new(r, 3, token, rv);
                cfg.port_range = Some((47_310, 47_330));
                // TCP between all of them, as between hosts, all opened at start.
                cfg.shm = false;
                cfg.connect = Connect::Eager;
                thread::spawn(move || build(&cfg))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        server.join().unwrap().unwrap();
        for m in &meshes {
            assert_eq!(m.endpoints, meshes[0].endpoints);
            assert_eq!(m.streams.iter().filter(|s| s.is_some()).count(), 2);
        }
        for e in &meshes[0].endpoints {
            assert!((47_310..=47_330).contains(&e.addr.port()), "{e:?}");
            // The route to a loopback rendezvous is loopback.
            assert!(e.addr.ip().is_loopback(), "{e:?}");
        }
        // The connection from rank 2 to rank 0 lands on rank 0's advertised port.
        let (s, grant) = meshes[2].streams[0].as_ref().unwrap();
        // Rank 0's hello carried its grant: the default unexpected limit shared by two peers.
        assert_eq!(*grant, 32 << 20);
        assert_eq!(s.peer_addr().unwrap().port(), meshes[0].endpoints[0].addr.port());
    }

    #[test]
    fn ranks_on_one_host_open_no_tcp_between_them() {
        let token = JobToken::generate();
        let (rv, server) = serve_on_loopback(3, token, Duration::from_secs(10));
        let meshes: Vec<Mesh> = (0..3)
            .map(|r| {
                let mut cfg = BootConfig::new(r, 3, token, rv);
                cfg.shm = true;
                thread::spawn(move || build(&cfg))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        server.join().unwrap().unwrap();
        for m in &meshes {
            assert!(m.streams.iter().all(Option::is_none));
            assert_eq!(m.shm.as_ref().map(|g| g.members().to_vec()), Some(vec![0, 1, 2]));
        }
    }
}
