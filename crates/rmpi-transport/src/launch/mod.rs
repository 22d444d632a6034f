//! How a rank learns who it is: which launcher started it, and one reader per launcher kind.
//!
//! Every reader produces the same [`BootConfig`]: size, rank, local rank and size, host label,
//! token, and [`Peers`], how to obtain the other ranks' endpoints. [`from_lookup`] tries, in order:
//!
//! | launcher | recognised by | reader |
//! | --- | --- | --- |
//! | rmpirun | `RMPI_SIZE` | [`BootConfig::from_lookup`] |
//! | Slurm `srun --mpi=pmi2`, MPICH Hydra | `PMI_FD` or `PMI_PORT` | `pmi` (PMI-2 or PMI-1) |
//! | Open MPI `mpirun` | `OMPI_COMM_WORLD_SIZE` (+ `RMPI_RENDEZVOUS`, `RMPI_TOKEN`) | `env_rendezvous` |
//! | `srun --mpi=none` with a rendezvous | `SLURM_PROCID` + `RMPI_RENDEZVOUS` | `env_rendezvous` |
//! | in-process harness | — | [`local`](crate::local) builds its configs itself |
//! | singleton | none of the above | `Ok(None)` |
//!
//! A launcher that started several tasks but gave them no way to meet (`srun` without
//! `--mpi=pmi2`, `srun --mpi=pmix`) is an error that says what to pass, never a world of one.
//! The routes are described in `docs/launch-contract.md` and `docs/pmi.md`.

mod env_rendezvous;
pub(crate) mod exchange;
mod pmi;

use std::sync::atomic::{AtomicBool, Ordering};

use crate::env::BootConfig;
use crate::error::{Error, Result};

/// Which launcher started this rank.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LauncherKind {
    /// rmpirun (local, ssh or srun): the `RMPI_*` contract and its rendezvous server.
    Rmpirun,
    /// A PMI-2 server (Slurm `srun --mpi=pmi2`, or Hydra with `RMPI_PMI=2`).
    Pmi2,
    /// A PMI-1 "simple" server (Hydra on `PMI_FD` or `PMI_PORT`).
    Pmi1,
    /// Open MPI's `mpirun`: `OMPI_COMM_WORLD_*` plus a rendezvous served by rank 0.
    OpenMpi,
    /// `srun` without PMI: `SLURM_PROCID`/`SLURM_NTASKS` plus a rendezvous served by rank 0.
    SlurmEnv,
    /// The in-process harness ([`local`](crate::local)) or an embedder's own config.
    Harness,
}

/// How a rank obtains the endpoint table.
#[derive(Clone, Debug)]
pub enum Peers {
    /// Join the rendezvous server at [`BootConfig::rendezvous`], run by the launcher.
    Rendezvous,
    /// Serve the rendezvous at [`BootConfig::rendezvous`]'s port, then join it (rank 0 when no
    /// launcher runs one).
    ServeRendezvous,
    /// The PMI key-value store. [`BootConfig::rendezvous`] holds only an address whose route
    /// picks the advertised address; the token comes from the store.
    Pmi(crate::pmi::Session),
    /// Register with this host's node agent at this address and receive the job's placement
    /// and this host's endpoints; other hosts' endpoints are looked up at first dial
    /// (`RMPI_DIRECTORY`, see [`directory`](crate::directory)). [`BootConfig::rendezvous`]
    /// holds only an address whose route picks the advertised address.
    Directory(std::net::SocketAddr),
}

/// Selects `PMI-1` or `PMI-2` when the launcher speaks both (Hydra): `1` or `2`.
pub const PMI_VERSION: &str = "RMPI_PMI";

/// Set once this process's own `PMI_FD` has been adopted.
static PMI_FD_TAKEN: AtomicBool = AtomicBool::new(false);

/// [`from_lookup`] over the process environment. The inherited `PMI_FD` is adopted once: a
/// second call must not take over whatever socket later reuses that descriptor number.
pub(crate) fn from_env() -> Result<Option<BootConfig>> {
    let get = |k: &str| std::env::var(k).ok();
    let pmi_fd = get(crate::env::SIZE).is_none() && get("PMI_FD").is_some();
    if pmi_fd && PMI_FD_TAKEN.swap(true, Ordering::SeqCst) {
        return Err(Error::Env {
            var: "PMI_FD",
            msg: "already used by this process: a PMI launch can be joined once".into(),
        });
    }
    from_lookup(&get)
}

/// Reads how this rank was launched, through `get` (an environment lookup). `Ok(None)`: no
/// launcher, a singleton. A `PMI_FD` in `get` is taken over: it must be this caller's socket.
pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<BootConfig>> {
    if get(crate::env::SIZE).is_some() {
        return BootConfig::from_lookup(get);
    }
    if get("PMI_FD").is_some() || get("PMI_PORT").is_some() {
        return pmi::read(get).map(Some);
    }
    if let Some(cfg) = env_rendezvous::read(get)? {
        return Ok(Some(cfg));
    }
    refuse_unreachable_launchers(get)?;
    Ok(None)
}

/// Fails when a launcher started several tasks but this process cannot reach the others.
fn refuse_unreachable_launchers(get: &dyn Fn(&str) -> Option<String>) -> Result<()> {
    let tasks = get("SLURM_STEP_NUM_TASKS").and_then(|s| s.trim().parse::<usize>().ok());
    if let Some(n) = tasks.filter(|n| *n > 1) {
        let kind = get("SLURM_MPI_TYPE").unwrap_or_else(|| "none".into());
        return Err(Error::Env {
            var: "PMI_FD",
            msg: format!(
                "srun started {n} tasks with --mpi={kind}, which gives rmpi no way to find the \
                 other tasks; run `srun --mpi=pmi2 ...` (or set MpiDefault=pmi2 in slurm.conf), \
                 or use rmpirun inside the allocation"
            ),
        });
    }
    if get("PMIX_RANK").is_some() {
        return Err(Error::Env {
            var: "PMIX_RANK",
            msg: "started by a PMIx launcher, which rmpi cannot speak: use `srun --mpi=pmi2`, \
                  or under Open MPI's mpirun pass `-x RMPI_RENDEZVOUS -x RMPI_TOKEN` \
                  (see docs/slurm.md)"
                .into(),
        });
    }
    Ok(())
}

/// An environment lookup over fixed `vars`, for tests.
#[cfg(test)]
pub(crate) fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: std::collections::HashMap<String, String> =
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    move |k| m.get(k).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(vars: &[(&str, &str)]) -> Result<Option<BootConfig>> {
        from_lookup(&lookup(vars))
    }

    #[test]
    fn nothing_is_a_singleton() {
        assert!(detect(&[]).unwrap().is_none());
        assert!(detect(&[("SLURM_STEP_NUM_TASKS", "1"), ("SLURM_PROCID", "0")]).unwrap().is_none());
    }

    #[test]
    fn srun_without_pmi_says_what_to_pass() {
        let e = detect(&[("SLURM_STEP_NUM_TASKS", "16"), ("SLURM_PROCID", "3")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--mpi=pmi2") && e.contains("16 tasks"), "{e}");
        let e = detect(&[("PMIX_RANK", "0")]).unwrap_err().to_string();
        assert!(e.contains("PMIx") && e.contains("RMPI_RENDEZVOUS"), "{e}");
    }

    #[test]
    fn rmpirun_contract_wins() {
        let c = detect(&[
            ("RMPI_SIZE", "2"),
            ("RMPI_RANK", "1"),
            ("RMPI_TOKEN", "00112233445566778899aabbccddeeff"),
            ("RMPI_RENDEZVOUS", "127.0.0.1:9"),
            ("RMPI_LOCAL_RANK", "1"),
            ("PMI_FD", "999"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((c.rank, c.size, c.local_rank, c.launcher), (1, 2, 1, LauncherKind::Rmpirun));
    }

    #[test]
    fn bad_pmi_fd_is_a_clear_error() {
        let e = detect(&[("PMI_FD", "not-a-number")]).unwrap_err().to_string();
        assert!(e.contains("PMI_FD"), "{e}");
        let e = detect(&[("PMI_FD", "987654")]).unwrap_err().to_string();
        assert!(e.contains("PMI_FD") && e.contains("not an open socket"), "{e}");
    }
}
