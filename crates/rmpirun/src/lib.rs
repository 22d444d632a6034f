//! `rmpirun`: the launcher of rmpi jobs.
//!
//! `rmpirun -n 32 --hostfile hosts ./app args` starts 32 ranks of `./app`, on this machine
//! (no hostfile, no `-H`: no SSH involved) or on the hosts of a hostfile over SSH, runs the job's
//! rendezvous server, forwards every rank's output line by line, and ends every rank everywhere
//! when one fails, on Ctrl-C, on a lost host or on `--timeout`. The contract with the ranks is in
//! `docs/launch-contract.md`; usage in `docs/rmpirun.md`.
//!
//! Modules:
//! * [`cli`]: command line (mpirun spellings included);
//! * [`hostfile`]: hostfile and `-H` parsing;
//! * [`mapping`]: rank placement and the oversubscription check;
//! * [`ssh`]: the ssh command line and the remote bootstrap script;
//! * [`protocol`]: frames between the launcher and a node agent;
//! * [`agent`]: the node agent, which starts, watches and kills one host's ranks;
//! * [`binding`]: which CPUs each rank of a host is bound to (`--bind-to`);
//! * [`link`]: the launcher's side of one agent (over SSH, or a local child process);
//! * [`output`]: forwarding of output lines, tags, per-rank files;
//! * `directory`: the launcher's and the agent's ends of the directory bootstrap;
//! * [`job`]: supervision, failure propagation, exit status;
//! * [`procs`]: small `/proc` and signal helpers;
//! * [`slurm`]: inside a Slurm allocation, one `srun` step starts the ranks instead of ssh;
//! * [`tree`]: the launch tree, node agents that start the agents of other hosts;
//! * [`launcher`]: `main` of the binary, tying the above together.

pub mod agent;
pub mod binding;
pub mod blame;
pub mod cli;
mod directory;
pub mod hostfile;
pub mod job;
pub mod launcher;
pub mod link;
pub mod mapping;
mod notes;
pub mod output;
pub mod procs;
pub mod protocol;
pub mod slurm;
pub mod ssh;
pub mod tree;
