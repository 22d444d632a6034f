//! `main` of the `rmpirun` binary: parses the command line, places the ranks and runs the job
//! (or, as `rmpirun --node-agent`, runs a node agent).

use std::ffi::OsString;

use clap::Parser;

use crate::cli::{normalize_args, parse_exports, Cli};
use crate::hostfile::{parse_host_list, read_hostfile, HostEntry};
use crate::job::{run_job, JobConfig, EXIT_LAUNCH};
use crate::mapping::map_ranks;
use crate::output::message;
use crate::slurm;
use crate::ssh::SshSettings;

/// The hidden first argument that turns `rmpirun` into a node agent.
pub const AGENT_FLAG: &str = "--node-agent";

/// Runs `rmpirun` with this process's arguments; returns the exit status.
pub fn main() -> i32 {
    crate::output::mark_start();
    // A thousand ranks hold a thousand rendezvous connections here, and three pipes each in
    // their node agent: more than the usual soft limit of 1024 descriptors.
    let _ = rmpi_transport::limits::raise_descriptor_limit();
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == AGENT_FLAG) {
        return crate::agent::agent_main();
    }
    if args.get(1).is_some_and(|a| a == crate::tree::RELAY_FLAG) {
        return crate::tree::relay::relay_main();
    }
    let cli = Cli::parse_from(normalize_args(args));
    // Inside a Slurm allocation, with no hostfile and no -H: one srun step starts the ranks.
    if cli.hostfile.is_none() && cli.hosts.is_empty() {
        match srun_job(&cli) {
            Ok(Some(job)) => {
                return runtime().map_or(EXIT_LAUNCH, |rt| rt.block_on(slurm::run(job)))
            }
            Ok(None) => {}
            Err(e) => {
                message(&e);
                return EXIT_LAUNCH;
            }
        }
    }
    let cfg = match job_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            message(&e);
            return EXIT_LAUNCH;
        }
    };
    let Some(rt) = runtime() else { return EXIT_LAUNCH };
    // Ranks are forked from this (the main) thread, so their parent-death signal fires only when
    // rmpirun itself ends.
    rt.block_on(run_job(cfg))
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => Some(rt),
        Err(e) => {
            message(&format!("cannot start the runtime: {e}"));
            None
        }
    }
}

/// The srun job when this process runs inside a Slurm allocation (`SLURM_JOB_NODELIST`).
fn srun_job(cli: &Cli) -> Result<Option<slurm::SrunJob>, String> {
    let Some(alloc) = slurm::Allocation::from_lookup(|k| std::env::var(k).ok())? else {
        return Ok(None);
    };
    // srun places and binds the ranks itself: say which of our options it does not take.
    let ignored = [
        (cli.bind_to != crate::binding::BindTo::Auto, "--bind-to (srun's --cpu-bind binds)"),
        (cli.report_bindings, "--report-bindings (srun's --cpu-bind=verbose reports)"),
        (cli.map_by != crate::mapping::MapBy::Slot, "--map-by (srun's --distribution maps)"),
        (cli.output_filename.is_some(), "--output-filename (srun's --output writes files)"),
    ];
    for (_, what) in ignored.iter().filter(|(set, _)| *set) {
        message(&format!(
            "inside a Slurm allocation the ranks start through srun, which ignores {what}"
        ));
    }
    Ok(Some(slurm::SrunJob {
        alloc,
        np: cli.np,
        argv: cli.command.clone(),
        exports: parse_exports(&cli.export)?,
        wdir: cli.wdir.clone(),
        tag_output: cli.tag_output,
        timeout: cli.timeout,
        boot_timeout: cli.boot_timeout,
        verbose: cli.verbose,
    }))
}

/// Turns the command line into a job: hosts, placement, environment, settings.
fn job_config(cli: &Cli) -> Result<JobConfig, String> {
    let hosts = select_hosts(cli)?;
    let slots: usize = hosts.iter().map(|h| h.slots).sum();
    let np = cli.np.unwrap_or(slots);
    if np == 0 {
        return Err("-n must be at least 1".into());
    }
    if np > 65_535 {
        return Err(format!("-n {np}: at most 65535 ranks"));
    }
    // On this machine alone (no hostfile, no -H) any number of ranks may run: trying a program
    // with more ranks than cores is what a first run looks like, and waiting ranks do not spin
    // when they outnumber the cores. With a hostfile the slots are the user's word.
    let local_only = cli.hostfile.is_none() && cli.hosts.is_empty();
    let placement = map_ranks(&hosts, np, cli.map_by, cli.oversubscribe || local_only)
        .map_err(|e| e.to_string())?;
    let exports = parse_exports(&cli.export)?;
    let (cwd, cwd_required) = match &cli.wdir {
        Some(d) => (Some(d.clone()), true),
        None => {
            let here = std::env::current_dir()
                .map_err(|e| format!("cannot read the current directory: {e}"))?;
            (Some(here.to_string_lossy().into_owned()), false)
        }
    };
    let timeout = cli.timeout;
    let ssh =
        SshSettings::new(cli.ssh.as_deref(), cli.connect_timeout).map_err(|e| e.to_string())?;
    Ok(JobConfig {
        hosts,
        placement,
        argv: cli.command.clone(),
        exports,
        cwd,
        cwd_required,
        tag_output: cli.tag_output,
        output_dir: cli.output_filename.clone(),
        timeout,
        boot_timeout: cli.boot_timeout,
        ssh,
        verbose: cli.verbose,
        bind: cli.bind_to,
        report_bindings: cli.report_bindings,
        launch_tree: cli.launch_tree,
    })
}

/// Hosts from `--hostfile` and/or `-H`; without either, this machine with one slot per CPU.
fn select_hosts(cli: &Cli) -> Result<Vec<HostEntry>, String> {
    let listed = if cli.hosts.is_empty() {
        None
    } else {
        Some(parse_host_list(&cli.hosts.join(",")).map_err(|e| e.to_string())?)
    };
    match (&cli.hostfile, listed) {
        (Some(path), None) => read_hostfile(path).map_err(|e| e.to_string()),
        (None, Some(list)) => Ok(list),
        (Some(path), Some(list)) => {
            // -H picks hosts out of the hostfile, keeping the hostfile's slots.
            let file = read_hostfile(path).map_err(|e| e.to_string())?;
            list.iter()
                .map(|want| {
                    file.iter().find(|h| h.name == want.name).cloned().ok_or_else(|| {
                        format!("-H {}: not in hostfile {}", want.name, path.display())
                    })
                })
                .collect()
        }
        (None, None) => {
            let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
            Ok(vec![HostEntry {
                name: "localhost".into(),
                user: None,
                port: None,
                slots: cpus,
                max_slots: None,
            }])
        }
    }
}
