//! The launcher/rank contract: environment variable names and how a rank reads them.
//!
//! See `docs/launch-contract.md`. A launcher sets these; [`BootConfig::from_env`] reads them.

use std::net::SocketAddr;
use std::time::Duration;

use crate::addr::AddrSelector;
use crate::error::{Error, Result};
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
/// Largest accepted message, in bytes.
pub const MAX_MESSAGE: &str = "RMPI_MAX_MESSAGE";

/// Shared memory between the ranks of one host: `0` turns it off (TCP between them, as
/// between hosts), `1` (the default) on.
pub const SHM: &str = "RMPI_SHM";

/// Default boot deadline.
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default largest accepted message (64 GiB).
pub const DEFAULT_MAX_MESSAGE: u64 = 1 << 36;
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
    /// Whether ranks on one host talk through shared memory (`RMPI_SHM`; default on).
    pub shm: bool,
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
            shm: shm_from_env(),
        }
    }

    /// Reads the configuration from the environment. `Ok(None)` when `RMPI_SIZE` is unset: the
    /// process was not started by a launcher and runs as a singleton.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`BootConfig::from_env`] but reading variables through `get` (for tests and embedders).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let Some(size) = get(SIZE) else { return Ok(None) };
        let size: usize = parse(SIZE, &size)?;
        if size == 0 || size > 65_535 {
            return Err(Error::Env { var: SIZE, msg: format!("{size} is not in 1..=65535") });
        }
        let rank: usize = parse(RANK, &required(&get, RANK)?)?;
        if rank >= size {
            return Err(Error::Env { var: RANK, msg: format!("{rank} is not below size {size}") });
        }
        let token = JobToken::from_hex(&required(&get, TOKEN)?)
            .map_err(|e| Error::Env { var: TOKEN, msg: e.to_string() })?;
        let rv = required(&get, RENDEZVOUS)?;
        let rendezvous = resolve(&rv)?;
        let mut cfg = BootConfig::new(rank, size, token, rendezvous);
        if let Some(s) = get(IFACE).filter(|s| !s.is_empty()) {
            cfg.advertise =
                AddrSelector::parse(&s).map_err(|msg| Error::Env { var: IFACE, msg })?;
        }
        if let Some(s) = get(PORT_RANGE).filter(|s| !s.is_empty()) {
            cfg.port_range = Some(parse_port_range(&s)?);
        }
        if let Some(s) = get(BOOT_TIMEOUT) {
            let secs: f64 = parse(BOOT_TIMEOUT, &s)?;
            if !(secs.is_finite() && secs > 0.0) {
                return Err(Error::Env { var: BOOT_TIMEOUT, msg: format!("{s} is not positive") });
            }
            cfg.boot_timeout = Duration::from_secs_f64(secs);
        }
        let local_size: Option<usize> =
            get(LOCAL_SIZE).map(|s| parse(LOCAL_SIZE, &s)).transpose()?;
        cfg.ranks_on_host = local_size.unwrap_or(1).max(1);
        if let Some(s) = get(SPIN_US) {
            cfg.spin = Duration::from_micros(parse(SPIN_US, &s)?);
        }
        if let Some(s) = get(MAX_MESSAGE) {
            cfg.max_message = parse(MAX_MESSAGE, &s)?;
        }
        cfg.host_label = get(HOST).filter(|s| !s.is_empty());
        if let Some(s) = get(SHM) {
            cfg.shm = parse_shm(&s)?;
        }
        Ok(Some(cfg))
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

fn required(get: &impl Fn(&str) -> Option<String>, var: &'static str) -> Result<String> {
    get(var).ok_or(Error::Env { var, msg: format!("not set (required because {SIZE} is set)") })
}

fn parse<T: std::str::FromStr>(var: &'static str, s: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.trim().parse().map_err(|e: T::Err| Error::Env { var, msg: format!("{s:?}: {e}") })
}

fn resolve(s: &str) -> Result<SocketAddr> {
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
}
