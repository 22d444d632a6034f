//! The reader for launchers that give rank and size but no key-value store: Open MPI's `mpirun`
//! (PMIx only, which has no documented wire protocol) and `srun --mpi=none`.
//!
//! The user names a rendezvous and a token in the environment and has the launcher forward them
//! (`mpirun -x RMPI_RENDEZVOUS -x RMPI_TOKEN`, or `srun --export=ALL`); rank 0 serves the
//! rendezvous on that port, every rank joins it. The host of `RMPI_RENDEZVOUS` must be rank 0's.

use super::{LauncherKind, Peers};
use crate::env::{parse, resolve, BootConfig, RENDEZVOUS, TOKEN};
use crate::error::{Error, Result};
use crate::token::JobToken;

type Get<'a> = &'a dyn Fn(&str) -> Option<String>;

/// One launcher's variable names.
struct Names {
    kind: LauncherKind,
    launcher: &'static str,
    rank: &'static str,
    size: &'static str,
    local_rank: &'static str,
    /// Local size, or `None` when it is the count of a comma list (`SLURM_GTIDS`).
    local_size: Option<&'static str>,
    local_list: Option<&'static str>,
    host: Option<&'static str>,
}

const OPEN_MPI: Names = Names {
    kind: LauncherKind::OpenMpi,
    launcher: "Open MPI's mpirun",
    rank: "OMPI_COMM_WORLD_RANK",
    size: "OMPI_COMM_WORLD_SIZE",
    local_rank: "OMPI_COMM_WORLD_LOCAL_RANK",
    local_size: Some("OMPI_COMM_WORLD_LOCAL_SIZE"),
    local_list: None,
    host: None,
};

const SLURM: Names = Names {
    kind: LauncherKind::SlurmEnv,
    launcher: "srun",
    rank: "SLURM_PROCID",
    size: "SLURM_STEP_NUM_TASKS",
    local_rank: "SLURM_LOCALID",
    local_size: None,
    local_list: Some("SLURM_GTIDS"),
    host: Some("SLURMD_NODENAME"),
};

/// `Ok(None)` when neither launcher's variables (with a rendezvous, for srun) are present.
pub(super) fn read(get: Get<'_>) -> Result<Option<BootConfig>> {
    let names = if get(OPEN_MPI.size).is_some() {
        &OPEN_MPI
    } else if get(SLURM.size).is_some() && get(RENDEZVOUS).is_some() {
        &SLURM
    } else {
        return Ok(None);
    };
    let size: usize = parse(names.size, &get(names.size).unwrap_or_default())?;
    if size <= 1 {
        return Ok(None);
    }
    if size > 65_535 {
        return Err(Error::Env { var: names.size, msg: format!("{size} exceeds 65535") });
    }
    let rank: usize = parse(names.rank, &get(names.rank).unwrap_or_default())?;
    if rank >= size {
        return Err(Error::Env { var: names.rank, msg: format!("{rank} is not below {size}") });
    }
    let how = format!(
        "{} started {size} ranks but rmpi cannot speak its PMIx: pick a free port on the first \
         host and run `RMPI_TOKEN=$(openssl rand -hex 16) RMPI_RENDEZVOUS=<first host>:<port> \
         mpirun -x RMPI_TOKEN -x RMPI_RENDEZVOUS ...` (see docs/slurm.md)",
        names.launcher
    );
    let rv = get(RENDEZVOUS).ok_or_else(|| Error::Env { var: RENDEZVOUS, msg: how.clone() })?;
    let tok = get(TOKEN).ok_or_else(|| Error::Env { var: TOKEN, msg: how.clone() })?;
    let token =
        JobToken::from_hex(&tok).map_err(|e| Error::Env { var: TOKEN, msg: e.to_string() })?;
    let mut cfg = BootConfig::new(rank, size, token, resolve(&rv)?);
    cfg.apply_tuning(&get)?;
    cfg.launcher = names.kind;
    cfg.local_rank =
        get(names.local_rank).map(|s| parse(names.local_rank, &s)).transpose()?.unwrap_or(0);
    let local_size = match (names.local_size, names.local_list) {
        (Some(var), _) => get(var).map(|s| parse(var, &s)).transpose()?,
        (None, Some(var)) => get(var).map(|s| s.split(',').filter(|p| !p.is_empty()).count()),
        (None, None) => None,
    };
    cfg.ranks_on_host = local_size.unwrap_or(1).max(cfg.local_rank + 1);
    cfg.host_label = names.host.and_then(&get).filter(|h| !h.is_empty());
    if rank == 0 {
        cfg.peers = Peers::ServeRendezvous;
    }
    Ok(Some(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_vars(vars: &[(&str, &str)]) -> Result<Option<BootConfig>> {
        read(&crate::launch::lookup(vars))
    }

    const TOK: &str = "00112233445566778899aabbccddeeff";

    #[test]
    fn open_mpi_without_rendezvous_explains_the_route() {
        let e = read_vars(&[("OMPI_COMM_WORLD_SIZE", "4"), ("OMPI_COMM_WORLD_RANK", "2")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("-x RMPI_RENDEZVOUS") && e.contains("mpirun"), "{e}");
    }

    #[test]
    fn open_mpi_rank_0_serves() {
        let vars = [
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("OMPI_COMM_WORLD_RANK", "0"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "0"),
            ("OMPI_COMM_WORLD_LOCAL_SIZE", "2"),
            ("RMPI_RENDEZVOUS", "127.0.0.1:4000"),
            ("RMPI_TOKEN", TOK),
        ];
        let c = read_vars(&vars).unwrap().unwrap();
        assert!(matches!(c.peers, Peers::ServeRendezvous));
        assert_eq!((c.rank, c.size, c.ranks_on_host, c.launcher), (0, 4, 2, LauncherKind::OpenMpi));
        let mut v = vars.to_vec();
        v[1].1 = "3";
        let c = read_vars(&v).unwrap().unwrap();
        assert!(matches!(c.peers, Peers::Rendezvous));
    }

    #[test]
    fn srun_none_with_rendezvous() {
        let c = read_vars(&[
            ("SLURM_STEP_NUM_TASKS", "8"),
            ("SLURM_PROCID", "5"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_GTIDS", "4,5"),
            ("SLURMD_NODENAME", "h3"),
            ("RMPI_RENDEZVOUS", "127.0.0.1:4000"),
            ("RMPI_TOKEN", TOK),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((c.rank, c.local_rank, c.ranks_on_host), (5, 1, 2));
        assert_eq!(c.host_label.as_deref(), Some("h3"));
        assert!(read_vars(&[("SLURM_STEP_NUM_TASKS", "8"), ("SLURM_PROCID", "5")])
            .unwrap()
            .is_none());
    }
}
