//! The reader for PMI launchers: Slurm's `srun --mpi=pmi2` and MPICH's Hydra `mpiexec`.
//!
//! It connects to the server (`PMI_FD` or `PMI_PORT`), initialises a PMI-2 or PMI-1 session,
//! and takes local rank and size and the host label from the launcher's variables. The endpoint
//! exchange itself happens later, in [`crate::pmi`]'s exchange, once the listener is bound.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Instant;

use super::{LauncherKind, Peers, PMI_VERSION};
use crate::directory::Bootstrap;
use crate::env::{parse, BootConfig};
use crate::error::{Error, Result};
use crate::pmi::layout::Layout;
use crate::pmi::{conn::Conn, mapping, pmi1, pmi2, Kvs, PmiFail, Session};
use crate::token::JobToken;

type Get<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Reads the PMI launch: initialises the session and fills in everything but the endpoints.
pub(super) fn read(get: Get<'_>) -> Result<BootConfig> {
    // Everything but identity and peers comes from the shared settings.
    let mut cfg = BootConfig::new(0, 1, JobToken([0; 16]), SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.apply_tuning(&get)?;
    let deadline = Instant::now() + cfg.boot_timeout;
    let version = pmi_version(get)?;
    let (conn, origin) = connect(get, deadline)?;
    let fail = |e: PmiFail| Error::Bootstrap {
        rank: get("PMI_RANK").and_then(|r| r.parse().ok()).unwrap_or(usize::MAX),
        msg: format!("PMI-{version} via {origin}: {e}"),
    };
    let port_mode = get("PMI_PORT").is_some() && get("PMI_FD").is_none();
    let id = if port_mode { get("PMI_ID") } else { get("PMI_RANK") };
    // The mapping says where every rank runs: PMI-2 as a job attribute, PMI-1 as a key the
    // server puts before the job starts (Slurm and Hydra both do).
    let (kvs, rank, size, mapping): (Box<dyn Kvs>, usize, usize, Option<String>) = if version == 2 {
        let mut c = pmi2::Client::init(conn, id.as_deref(), get("PMI_JOBID").as_deref(), deadline)
            .map_err(fail)?;
        let mapping = c.job_attr("PMI_process_mapping", deadline).map_err(fail)?;
        let (r, s) = (c.rank, c.size);
        (Box::new(c), r, s, mapping)
    } else {
        let rank_size = if port_mode {
            None
        } else {
            let r: usize = parse("PMI_RANK", &required(get, "PMI_RANK")?)?;
            let s: usize = parse("PMI_SIZE", &required(get, "PMI_SIZE")?)?;
            Some((r, s))
        };
        let mut c = pmi1::Client::init(conn, id.as_deref(), rank_size, deadline).map_err(fail)?;
        let mapping = c.get("PMI_process_mapping", deadline).map_err(fail)?;
        let (r, s) = (c.rank, c.size);
        (Box::new(c), r, s, mapping)
    };
    if size > 65_535 {
        return Err(Error::Bootstrap { rank, msg: format!("PMI job size {size} exceeds 65535") });
    }
    cfg.rank = rank;
    cfg.size = size;
    cfg.launcher = if version == 2 { LauncherKind::Pmi2 } else { LauncherKind::Pmi1 };
    let (local_rank, local_size) = match local_from_env(get)? {
        Some(l) => l,
        None => mapping.as_deref().and_then(|m| mapping::local(m, size, rank)).unwrap_or((0, 1)),
    };
    cfg.local_rank = local_rank;
    cfg.ranks_on_host = local_size.max(1);
    let hydra_host = get("MPIR_CVAR_CH3_INTERFACE_HOSTNAME").filter(|h| !h.is_empty());
    cfg.host_label = get("SLURMD_NODENAME").filter(|h| !h.is_empty()).or(hydra_host.clone());
    cfg.rendezvous = SocketAddr::new(route_hint(get, hydra_host.as_deref()), 0);
    let mut session = Session::new(kvs, origin);
    session.layout = Layout {
        mapping,
        local_ranks: get("SLURM_GTIDS").and_then(|g| gtids(&g)),
        local: local_from_env(get)?,
        nodelist: get("SLURM_STEP_NODELIST").filter(|l| !l.trim().is_empty()),
        node_name: get("SLURMD_NODENAME").filter(|h| !h.is_empty()),
        table: Bootstrap::from_lookup(get)? == Bootstrap::Table,
    };
    cfg.peers = Peers::Pmi(session);
    Ok(cfg)
}

/// The world ranks in Slurm's `SLURM_GTIDS` (`4,5,6,7`), or `None` if it is not such a list.
fn gtids(list: &str) -> Option<Vec<usize>> {
    list.split(',').map(|r| r.trim().parse().ok()).collect()
}

fn required(get: Get<'_>, var: &'static str) -> Result<String> {
    get(var).ok_or(Error::Env { var, msg: "not set (required with PMI_FD under PMI-1)".into() })
}

/// PMI-2 under Slurm (its plugin is named pmi2), PMI-1 elsewhere; `RMPI_PMI` overrides.
fn pmi_version(get: Get<'_>) -> Result<u32> {
    match get(PMI_VERSION).as_deref().map(str::trim) {
        Some("1") => Ok(1),
        Some("2") => Ok(2),
        Some(other) => {
            Err(Error::Env { var: PMI_VERSION, msg: format!("{other:?} is neither 1 nor 2") })
        }
        None if get("SLURM_MPI_TYPE").is_some_and(|t| t.starts_with("pmi2")) => Ok(2),
        None if get("PMI_JOBID").is_some() => Ok(2),
        None => Ok(1),
    }
}

fn connect(get: Get<'_>, deadline: Instant) -> Result<(Conn, String)> {
    if let Some(fd) = get("PMI_FD") {
        let n: i32 = parse("PMI_FD", &fd)?;
        let conn = Conn::from_fd(n).map_err(|msg| Error::Env { var: "PMI_FD", msg })?;
        return Ok((conn, format!("PMI_FD={n}")));
    }
    let port = get("PMI_PORT").unwrap_or_default();
    let conn = Conn::connect(&port, deadline).map_err(|msg| Error::Env { var: "PMI_PORT", msg })?;
    Ok((conn, format!("PMI_PORT={port}")))
}

/// Local rank and size from the launcher's variables: Slurm's `SLURM_LOCALID` and the length of
/// `SLURM_GTIDS`, or Hydra's `MPI_LOCALRANKID` and `MPI_LOCALNRANKS`.
fn local_from_env(get: Get<'_>) -> Result<Option<(usize, usize)>> {
    if let (Some(id), Some(gtids)) = (get("SLURM_LOCALID"), get("SLURM_GTIDS")) {
        let id: usize = parse("SLURM_LOCALID", &id)?;
        let n = gtids.split(',').filter(|s| !s.trim().is_empty()).count();
        return Ok(Some((id, n.max(id + 1))));
    }
    if let (Some(id), Some(n)) = (get("MPI_LOCALRANKID"), get("MPI_LOCALNRANKS")) {
        let id: usize = parse("MPI_LOCALRANKID", &id)?;
        let n: usize = parse("MPI_LOCALNRANKS", &n)?;
        return Ok(Some((id, n.max(id + 1))));
    }
    Ok(None)
}

/// An address whose route picks the advertised one: srun's address as the node sees it, else
/// Hydra's name for this host, else the `PMI_PORT` host, else loopback.
fn route_hint(get: Get<'_>, hydra_host: Option<&str>) -> IpAddr {
    let resolve =
        |h: &str| (h, 0).to_socket_addrs().ok().and_then(|mut a| a.next()).map(|a| a.ip());
    if let Some(ip) = get("SLURM_LAUNCH_NODE_IPADDR").and_then(|s| s.trim().parse().ok()) {
        return ip;
    }
    if let Some(ip) = hydra_host.and_then(resolve) {
        return ip;
    }
    if let Some(ip) = get("PMI_PORT")
        .and_then(|p| p.rsplit_once(':').map(|(h, _)| h.trim_matches(['[', ']']).to_owned()))
        .and_then(|h| resolve(&h))
    {
        return ip;
    }
    Ipv4Addr::LOCALHOST.into()
}
