//! The launcher/rank contract: environment variable names and how a rank reads them.
//!
//! See `docs/launch-contract.md`. A launcher sets these; [`BootConfig::from_env`] reads them.

use std::net::SocketAddr;
use std::time::Duration;

use crate::addr::AddrSelector;
use crate::error::{Error, Result};
use crate::launch::{LauncherKind, Peers};
use crate::token::JobToken;

/// World size.
pub const SIZE: &str = "RMPI_SIZE";
/// This process's rank.
pub const RANK: &str = "RMPI_RANK";
/// `host:port` of the rendezvous server, as reachable from this host.
pub const RENDEZVOUS: &str = "RMPI_RENDEZVOUS";
/// The job token, 32 hex digits.
pub const TOKEN: &str = "RMPI_TOKEN";
/// Ranks of this job on this host.
pub const LOCAL_SIZE: &str = "RMPI_LOCAL_SIZE";
/// Index of this rank among those on this host.
pub const LOCAL_RANK: &str = "RMPI_LOCAL_RANK";
/// The launcher's name for this host.
pub const HOST: &str = "RMPI_HOST";
/// Interface name or CIDR selecting the advertised address.
pub const IFACE: &str = "RMPI_IFACE";
/// `LOW-HIGH` port range for the listening socket.
pub const PORT_RANGE: &str = "RMPI_PORT_RANGE";
/// Seconds to wait for the rendezvous and for peers.
pub const BOOT_TIMEOUT: &str = "RMPI_BOOT_TIMEOUT";
/// Microseconds a waiting call polls before it sleeps.
pub const SPIN_US: &str = "RMPI_SPIN_US";
/// How a waiting call polls before it sleeps: `auto` (the default: following the host's load),
/// `busy`, `yield` or `none`.
pub const POLLING: &str = "RMPI_POLLING";
/// Largest accepted message, in bytes.
pub const MAX_MESSAGE: &str = "RMPI_MAX_MESSAGE";
/// Largest message, in bytes, sent to a peer over TCP before its receive is posted (default
/// 524288); longer ones wait at the sender until the receiver asks for them.
pub const EAGER_LIMIT: &str = "RMPI_EAGER_LIMIT";
/// Like [`EAGER_LIMIT`], for peers reached through shared memory (default 1048576).
pub const SHM_EAGER_LIMIT: &str = "RMPI_SHM_EAGER_LIMIT";
/// Bytes of eager messages a rank buffers for receives not posted yet, shared among its peers
/// (default 67108864); senders of more wait.
pub const UNEXPECTED_LIMIT: &str = "RMPI_UNEXPECTED_LIMIT";
/// Seconds after which a silent peer host is given up (`off`: never).
pub const PEER_TIMEOUT: &str = "RMPI_PEER_TIMEOUT";

/// Shared memory between the ranks of one host: `0` turns it off (TCP between them, as
/// between hosts), `1` (the default) on.
pub const SHM: &str = "RMPI_SHM";
/// When TCP connections between ranks open: `lazy` (the default) on first traffic, `eager` all
/// at start (the full mesh).
pub const CONNECT: &str = "RMPI_CONNECT";

/// When a rank opens its TCP connections ([`CONNECT`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connect {
    /// To a peer on the first send to it or the first receive naming it: a rank holds sockets
    /// only for the peers it talks to.
    Lazy,
    /// To every peer during init (p - 1 sockets per rank).
    Eager,
}

/// Single-copy transfer of large messages between local ranks (`process_vm_readv`): `0` copies
/// them through the shared segment instead; `1` (the default) uses it where the kernel allows.
pub const SHM_CMA: &str = "RMPI_SHM_CMA";

/// Default boot deadline.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default largest accepted message (16 GiB: more than one message of any real job; a longer
/// announcement is a protocol error).
pub const DEFAULT_MAX_MESSAGE: u64 = 1 << 34;
/// Default time a waiting call polls before it sleeps (how it polls depends on the host's load:
/// see [`BootConfig::spin`]).
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// Everything a rank needs to join a job.
#[derive(Clone, Debug)]
pub struct BootConfig {
    /// This rank.
    pub rank: usize,
    /// World size.
    pub size: usize,
    /// The job token.
    pub token: JobToken,
    /// The rendezvous server.
    pub rendezvous: SocketAddr,
    /// Which local address to advertise.
    pub advertise: AddrSelector,
    /// Optional listening port range.
    pub port_range: Option<(u16, u16)>,
    /// Deadline for rendezvous and mesh set-up.
    pub boot_timeout: Duration,
    /// How long a wait polls before it blocks. While every running task on the host has a core,
    /// it busy-polls; when `ranks_on_host` exceeds the cores (or one task beyond them runs), it
    /// polls and yields the core after every look, so a peer rank sharing the core runs at once;
    /// when the ranks fit but other load keeps the cores busy it does not poll. Zero: never poll.
    pub spin: Duration,
    /// Ranks of this job on this host (`RMPI_LOCAL_SIZE`; 1 when unknown).
    pub ranks_on_host: usize,
    /// Largest accepted message.
    pub max_message: u64,
    /// The launcher's name for this host, if it gave one.
    pub host_label: Option<String>,
    /// After how long a peer whose host went silent is given up (`None`: never); see
    /// [`liveness`](crate::liveness).
    pub peer_timeout: Option<Duration>,
    /// Index of this rank among those on its host (0 when unknown).
    pub local_rank: usize,
    /// Which launcher started this rank.
    pub launcher: LauncherKind,
    /// How this rank learns its peers' endpoints (and, under PMI, the job token).
    pub peers: Peers,
    /// Whether ranks on one host talk through shared memory (`RMPI_SHM`; default on).
    pub shm: bool,
    /// When TCP connections open (`RMPI_CONNECT`; default on first traffic).
    pub connect: Connect,
}

impl BootConfig {
    /// A configuration with defaults for everything but the four required values.
    pub fn new(rank: usize, size: usize, token: JobToken, rendezvous: SocketAddr) -> Self {
        BootConfig {
            rank,
            size,
            token,
            rendezvous,
            advertise: AddrSelector::RouteToRendezvous,
            port_range: None,
            boot_timeout: DEFAULT_BOOT_TIMEOUT,
            spin: DEFAULT_SPIN,
            ranks_on_host: 1,
            max_message: DEFAULT_MAX_MESSAGE,
            host_label: None,
            peer_timeout: Some(crate::liveness::DEFAULT_PEER_TIMEOUT),
            local_rank: 0,
            launcher: LauncherKind::Harness,
            peers: Peers::Rendezvous,
            shm: shm_from_env(),
            connect: connect_from_env(),
        }
    }

    /// Reads the configuration from the environment, through whichever launcher started this
    /// process (rmpirun, Slurm's PMI-2, Hydra's PMI-1 or PMI-2, Open MPI's `mpirun`: see
    /// [`launch`](crate::launch)). `Ok(None)` when no launcher did: the process runs as a
    /// singleton. Under PMI this talks to the launcher's server.
    pub fn from_env() -> Result<Option<Self>> {
        crate::launch::from_env()
    }

    /// The rmpirun contract alone (`RMPI_SIZE`, `RMPI_RANK`, ...), read through `get` (for tests
    /// and embedders). `Ok(None)` when `RMPI_SIZE` is unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let Some(size) = get(SIZE) else { return Ok(None) };
        let size: usize = parse(SIZE, &size)?;
        if size == 0 || size > 65_535 {
            return Err(Error::Env { var: SIZE, msg: format!("{size} is not in 1..=65535") });
        }
        // Under rmpirun's srun path, one srun step starts every rank: srun numbers them.
        let (rank_var, rank) = match get(RANK) {
            Some(r) => (RANK, r),
            None => (SLURM_PROCID, get(SLURM_PROCID).ok_or_else(|| missing(RANK))?),
        };
        let rank: usize = parse(rank_var, &rank)?;
        if rank >= size {
            return Err(Error::Env { var: RANK, msg: format!("{rank} is not below size {size}") });
        }
        let token = JobToken::from_hex(&required(&get, TOKEN)?)
            .map_err(|e| Error::Env { var: TOKEN, msg: e.to_string() })?;
        let rv = required(&get, RENDEZVOUS)?;
        let rendezvous = resolve(&rv)?;
        let mut cfg = BootConfig::new(rank, size, token, rendezvous);
        cfg.launcher = LauncherKind::Rmpirun;
        cfg.apply_tuning(&get)?;
        let srun = rank_var == SLURM_PROCID;
        let local_size: Option<usize> = match get(LOCAL_SIZE) {
            Some(s) => Some(parse(LOCAL_SIZE, &s)?),
            None if srun => get("SLURM_GTIDS").map(|g| g.split(',').count()),
            None => None,
        };
        let local_rank = match get(LOCAL_RANK) {
            Some(s) => Some(parse(LOCAL_RANK, &s)?),
            None if srun => get("SLURM_LOCALID").map(|s| parse("SLURM_LOCALID", &s)).transpose()?,
            None => None,
        };
        cfg.local_rank = local_rank.unwrap_or(0);
        cfg.ranks_on_host = local_size.unwrap_or(1).max(cfg.local_rank + 1);
        let host = get(HOST).or_else(|| if srun { get("SLURMD_NODENAME") } else { None });
        cfg.host_label = host.filter(|s| !s.is_empty());
        if let Some(d) = get(crate::directory::DIRECTORY).filter(|s| !s.is_empty()) {
            let at = d.parse().map_err(|e| Error::Env {
                var: crate::directory::DIRECTORY,
                msg: format!("{d:?} is not an address: {e}"),
            })?;
            cfg.peers = crate::launch::Peers::Directory(at);
        }
        Ok(Some(cfg))
    }

    /// Reads the settings every launcher kind shares: `RMPI_IFACE`, `RMPI_PORT_RANGE`,
    /// `RMPI_BOOT_TIMEOUT`, `RMPI_SPIN_US`, `RMPI_MAX_MESSAGE`, `RMPI_PEER_TIMEOUT`, `RMPI_SHM`, `RMPI_CONNECT`.
    pub(crate) fn apply_tuning(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<()> {
        let cfg = self;
        if let Some(s) = get(IFACE).filter(|s| !s.is_empty()) {
            cfg.advertise =
                AddrSelector::parse(&s).map_err(|msg| Error::Env { var: IFACE, msg })?;
        }
        if let Some(s) = get(PORT_RANGE).filter(|s| !s.is_empty()) {
            cfg.port_range = Some(parse_port_range(&s)?);
        }
        if let Some(s) = get(BOOT_TIMEOUT) {
            cfg.boot_timeout =
                crate::seconds::parse(&s).map_err(|msg| Error::Env { var: BOOT_TIMEOUT, msg })?;
        }
        if let Some(s) = get(SPIN_US) {
            cfg.spin = Duration::from_micros(parse(SPIN_US, &s)?);
        }
        if let Some(s) = get(MAX_MESSAGE) {
            cfg.max_message = parse(MAX_MESSAGE, &s)?;
        }
        if let Some(s) = get(PEER_TIMEOUT) {
            cfg.peer_timeout = match s.trim() {
                "off" | "0" => None,
                t => Some(
                    crate::seconds::parse(t)
                        .map_err(|msg| Error::Env { var: PEER_TIMEOUT, msg })?,
                ),
            };
        }
        if let Some(s) = get(SHM) {
            cfg.shm = parse_shm(&s)?;
        }
        if let Some(s) = get(CONNECT) {
            cfg.connect = parse_connect(&s)?;
        }
        Ok(())
    }
}

/// The default of [`BootConfig::shm`]: on unless the process environment says `RMPI_SHM=0`
/// (so that `BootConfig::new` and `local::run` follow the variable too).
fn shm_from_env() -> bool {
    std::env::var(SHM).ok().and_then(|s| parse_shm(&s).ok()).unwrap_or(true)
}

fn parse_shm(s: &str) -> Result<bool> {
    match s.trim() {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(Error::Env { var: SHM, msg: format!("{s:?} is neither 0 nor 1") }),
    }
}

/// The default of [`BootConfig::connect`]: the process environment's `RMPI_CONNECT`, else lazy.
fn connect_from_env() -> Connect {
    std::env::var(CONNECT).ok().and_then(|s| parse_connect(&s).ok()).unwrap_or(Connect::Lazy)
}

fn parse_connect(s: &str) -> Result<Connect> {
    match s.trim() {
        "lazy" => Ok(Connect::Lazy),
        "eager" => Ok(Connect::Eager),
        _ => Err(Error::Env { var: CONNECT, msg: format!("{s:?} is neither lazy nor eager") }),
    }
}

fn required(get: &impl Fn(&str) -> Option<String>, var: &'static str) -> Result<String> {
    get(var).ok_or_else(|| missing(var))
}

fn missing(var: &'static str) -> Error {
    Error::Env { var, msg: format!("not set (required because {SIZE} is set)") }
}

/// Slurm's rank of a task, read when `RMPI_RANK` is unset (rmpirun's srun path).
const SLURM_PROCID: &str = "SLURM_PROCID";

/// The job-wide part of the contract, as every rmpirun path (local, ssh, srun) writes it; with
/// [`rendezvous_var`] and [`rank_vars`] the inverse of [`BootConfig::from_lookup`].
pub fn job_vars(size: usize, token: &JobToken, boot_timeout: Duration) -> Vec<(String, String)> {
    vec![
        (SIZE.to_string(), size.to_string()),
        (TOKEN.to_string(), token.to_hex()),
        (BOOT_TIMEOUT.to_string(), boot_timeout.as_secs_f64().to_string()),
    ]
}

/// `RMPI_RENDEZVOUS`, written once the launcher knows the address a host reaches it on.
pub fn rendezvous_var(addr: SocketAddr) -> (String, String) {
    (RENDEZVOUS.to_string(), addr.to_string())
}

/// The per-rank part of the contract (left out under srun, which numbers the tasks itself).
/// `host`: the launcher's name for the host, if it has a meaningful one.
pub fn rank_vars(
    rank: usize,
    local_rank: usize,
    local_size: usize,
    host: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut v = vec![
        (RANK, rank.to_string()),
        (LOCAL_RANK, local_rank.to_string()),
        (LOCAL_SIZE, local_size.to_string()),
    ];
    if let Some(h) = host {
        v.push((HOST, h.to_string()));
    }
    v
}

pub(crate) fn parse<T: std::str::FromStr>(var: &'static str, s: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.trim().parse().map_err(|e: T::Err| Error::Env { var, msg: format!("{s:?}: {e}") })
}

pub(crate) fn resolve(s: &str) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    let mut addrs = s.to_socket_addrs().map_err(|e| Error::Env {
        var: RENDEZVOUS,
        msg: format!("{s:?} is not a reachable host:port: {e}"),
    })?;
    addrs.next().ok_or(Error::Env { var: RENDEZVOUS, msg: format!("{s:?} resolves to no address") })
}

fn parse_port_range(s: &str) -> Result<(u16, u16)> {
    let bad = || Error::Env { var: PORT_RANGE, msg: format!("{s:?} is not LOW-HIGH") };
    let (lo, hi) = s.split_once('-').ok_or_else(bad)?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo == 0 || lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Option<BootConfig>> {
        let m: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        BootConfig::from_lookup(|k| m.get(k).cloned())
    }

    const TOK: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn singleton_when_unset() {
        assert!(cfg(&[]).unwrap().is_none());
    }

    #[test]
    fn full_config() {
        let c = cfg(&[
            (SIZE, "4"),
            (RANK, "3"),
            (TOKEN, TOK),
            (RENDEZVOUS, "127.0.0.1:999"),
            (PORT_RANGE, "5000-5100"),
            (BOOT_TIMEOUT, "2.5"),
            (SPIN_US, "0"),
            (IFACE, "10.0.0.0/8"),
            (LOCAL_SIZE, "6"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((c.rank, c.size), (3, 4));
        assert_eq!(c.port_range, Some((5000, 5100)));
        assert_eq!(c.boot_timeout, Duration::from_millis(2500));
        assert_eq!(c.spin, Duration::ZERO);
        assert_eq!(c.ranks_on_host, 6);
        assert_eq!(c.token.to_hex(), TOK);
    }

    #[test]
    fn srun_numbers_the_ranks_when_rmpi_rank_is_unset() {
        let c = cfg(&[
            (SIZE, "8"),
            (TOKEN, TOK),
            (RENDEZVOUS, "127.0.0.1:999"),
            ("SLURM_PROCID", "5"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_GTIDS", "4,5"),
            ("SLURMD_NODENAME", "h3"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((c.rank, c.local_rank, c.ranks_on_host), (5, 1, 2));
        assert_eq!(c.host_label.as_deref(), Some("h3"));
        let written: HashMap<String, String> = job_vars(8, &c.token, Duration::from_secs(9))
            .into_iter()
            .chain(rank_vars(5, 1, 2, Some("h3")).into_iter().map(|(k, v)| (k.to_string(), v)))
            .chain([rendezvous_var("127.0.0.1:999".parse().unwrap())])
            .collect();
        let back = BootConfig::from_lookup(|k| written.get(k).cloned()).unwrap().unwrap();
        assert_eq!((back.rank, back.size, back.local_rank, back.ranks_on_host), (5, 8, 1, 2));
        assert_eq!((back.token, back.boot_timeout), (c.token, Duration::from_secs(9)));
    }

    #[test]
    fn errors_name_the_variable() {
        let e = cfg(&[(SIZE, "4")]).unwrap_err().to_string();
        assert!(e.contains(RANK), "{e}");
        let e = cfg(&[(SIZE, "4"), (RANK, "4")]).unwrap_err().to_string();
        assert!(e.contains("RMPI_RANK") && e.contains("below size 4"), "{e}");
        let e = cfg(&[(SIZE, "2"), (RANK, "0"), (TOKEN, "abc")]).unwrap_err().to_string();
        assert!(e.contains(TOKEN), "{e}");
        let e = cfg(&[(SIZE, "2"), (RANK, "0"), (TOKEN, TOK), (RENDEZVOUS, "nope")])
            .unwrap_err()
            .to_string();
        assert!(e.contains(RENDEZVOUS), "{e}");
        let e = cfg(&[
            (SIZE, "2"),
            (RANK, "0"),
            (TOKEN, TOK),
            (RENDEZVOUS, "127.0.0.1:1"),
            (PORT_RANGE, "9-3"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains(PORT_RANGE), "{e}");
        assert!(cfg(&[(SIZE, "0")]).is_err());
    }

    #[test]
    fn absurd_boot_timeouts_are_refused() {
        for bad in ["1e19", "18446744073709551615", "0", "-3", "nan"] {
            let vars = [(SIZE, "2"), (RANK, "0"), (TOKEN, TOK), (RENDEZVOUS, "127.0.0.1:1")];
            let e = cfg(&[&vars[..], &[(BOOT_TIMEOUT, bad)]].concat()).unwrap_err().to_string();
            assert!(e.contains(BOOT_TIMEOUT), "{bad}: {e}");
        }
    }
}
