//! Command line of `rmpirun` (Open MPI / MPICH habits).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::binding::BindTo;
use crate::mapping::MapBy;

/// Start an rmpi job: N copies of a program, on this machine or over SSH on the hosts of a
/// hostfile, with their output forwarded here.
///
/// Without --hostfile and -H, every rank runs on this machine and SSH is not used.
///
/// Exit status: 0 when every rank exits 0; otherwise the status of the first rank that failed
/// (128+N for a rank killed by signal N), 124 on --timeout, 128+N when rmpirun itself gets
/// signal N (Ctrl-C: 130), 127 when the program cannot be found, 1 for any other launch failure.
#[derive(Debug, Parser)]
#[command(name = "rmpirun", version, max_term_width = 100)]
pub struct Cli {
    /// Number of ranks to start (default: the number of slots; without a host list, the number
    /// of CPUs of this machine). Also spelled -np, -c.
    #[arg(short = 'n', long = "np", visible_short_alias = 'c', value_name = "N")]
    pub np: Option<usize>,

    /// Hostfile: Open MPI (`host slots=N max_slots=M`), MPICH (`host:N`) or bare host lines;
    /// `user@host`, `[ipv6]`, and `port=P` for a per-host SSH port. Also --machinefile, -f.
    #[arg(long = "hostfile", visible_alias = "machinefile", short = 'f', value_name = "FILE")]
    pub hostfile: Option<PathBuf>,

    /// Hosts as a comma-separated list, `host` (one slot) or `host:N` (N slots); may be repeated.
    /// Used instead of a hostfile, or to pick hosts out of it.
    #[arg(short = 'H', long = "host", value_name = "HOSTS")]
    pub hosts: Vec<String>,

    /// Export VAR to the ranks with this machine's value (`-x VAR`) or a given one
    /// (`-x VAR=value`). May be repeated. Local ranks get this machine's whole environment anyway.
    #[arg(short = 'x', value_name = "VAR[=VALUE]")]
    pub export: Vec<String>,

    /// Working directory of the ranks (default: the current directory; on a host where it does
    /// not exist, the home directory). Also --wd.
    #[arg(long = "wdir", visible_alias = "wd", value_name = "DIR")]
    pub wdir: Option<String>,

    /// Rank placement: `slot` fills each host's slots in order, `node` goes round-robin.
    #[arg(long = "map-by", value_enum, default_value_t = MapBy::Slot)]
    pub map_by: MapBy,

    /// Bind each rank to CPUs of its host: `auto` gives every rank a core of its own when the
    /// host's ranks fit its cores and leaves them unbound otherwise; `core` and `hwthread` bind
    /// round-robin even when ranks outnumber them; `none` never binds.
    #[arg(long = "bind-to", value_enum, default_value_t = BindTo::Auto, value_name = "WHAT")]
    pub bind_to: BindTo,

    /// Print each rank's binding on its stderr before it starts.
    #[arg(long = "report-bindings")]
    pub report_bindings: bool,

    /// Allow more ranks than slots (never more than a host's max_slots). Implied when neither
    /// --hostfile nor -H is given: on this machine alone any -n runs.
    #[arg(long)]
    pub oversubscribe: bool,

    /// Prefix every output line with `[rank] `.
    #[arg(long = "tag-output")]
    pub tag_output: bool,

    /// Write each rank's output to DIR/rank.N/stdout and DIR/rank.N/stderr instead of this
    /// terminal.
    #[arg(long = "output-filename", value_name = "DIR")]
    pub output_filename: Option<PathBuf>,

    /// End the job after this many seconds and report it as timed out (exit status 124).
    #[arg(long, value_name = "SECONDS", value_parser = rmpi_transport::seconds::parse)]
    pub timeout: Option<Duration>,

    /// Seconds ranks wait for the rendezvous and their peers (sets RMPI_BOOT_TIMEOUT).
    #[arg(long = "boot-timeout", value_name = "SECONDS", default_value = "60",
          value_parser = rmpi_transport::seconds::parse)]
    pub boot_timeout: Duration,

    /// SSH client command, split like a shell would (default: $RMPI_SSH, else `ssh`).
    /// Example: --ssh "ssh -F /path/to/config". It always runs with BatchMode=yes.
    #[arg(long, value_name = "COMMAND")]
    pub ssh: Option<String>,

    /// Seconds to wait for an SSH connection (ssh's ConnectTimeout).
    #[arg(long = "connect-timeout", value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=rmpi_transport::seconds::MAX_SECONDS))]
    pub connect_timeout: u64,

    /// How rmpirun reaches remote hosts: `flat` (or 0) opens every SSH session from here; a
    /// fan-out F opens F, and the node agent on each of those starts the agents of its part of
    /// the hosts, F at a time, and so on down. Default `auto`: flat up to 64 remote hosts, a tree
    /// of fan-out 32 above.
    #[arg(long = "launch-tree", value_name = "F|flat|auto", default_value = "auto",
          value_parser = crate::tree::LaunchTree::parse)]
    pub launch_tree: crate::tree::LaunchTree,

    /// Report launch progress on stderr.
    #[arg(short, long)]
    pub verbose: bool,

    /// Accepted for Open MPI compatibility; rmpirun runs as root without it.
    #[arg(long = "allow-run-as-root", hide_short_help = true)]
    pub allow_run_as_root: bool,

    /// The program to run, then its arguments.
    #[arg(
        value_name = "PROGRAM",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 1..
    )]
    pub command: Vec<String>,
}

/// Options that take a value (both spellings), used to find where the program starts.
const VALUE_OPTIONS: &[&str] = &[
    "-n",
    "--np",
    "-c",
    "-f",
    "--hostfile",
    "--machinefile",
    "-H",
    "--host",
    "-x",
    "--wdir",
    "--wd",
    "--map-by",
    "--bind-to",
    "--output-filename",
    "--timeout",
    "--boot-timeout",
    "--ssh",
    "--connect-timeout",
];

/// Single-dash long options of mpirun that are rewritten to their `--` form.
const SINGLE_DASH_LONG: &[&str] = &[
    "-np",
    "-hostfile",
    "-machinefile",
    "-host",
    "-wdir",
    "-wd",
    "-oversubscribe",
    "-tag-output",
    "-output-filename",
    "-timeout",
    "-map-by",
    "-bind-to",
    "-report-bindings",
    "-allow-run-as-root",
];

/// Rewrites mpirun's single-dash long options (`-np 4`, `-hostfile f`) to `--np 4`, ..., up to
/// the program name; the program's own arguments are left alone.
pub fn normalize_args<I: IntoIterator<Item = OsString>>(args: I) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut iter = args.into_iter();
    if let Some(argv0) = iter.next() {
        out.push(argv0);
    }
    let mut expect_value = false;
    let mut in_command = false;
    for arg in iter {
        if in_command {
            out.push(arg);
            continue;
        }
        if expect_value {
            expect_value = false;
            out.push(arg);
            continue;
        }
        let s = arg.to_string_lossy().into_owned();
        if s == "--" {
            in_command = true;
            out.push(arg);
            continue;
        }
        let (name, has_inline_value) = match s.split_once('=') {
            Some((n, _)) => (n.to_string(), true),
            None => (s.clone(), false),
        };
        let rewritten =
            if SINGLE_DASH_LONG.contains(&name.as_str()) { Some(format!("-{s}")) } else { None };
        let long_name = rewritten.as_deref().map(|r| r.split('=').next().unwrap_or(r));
        let effective = long_name.unwrap_or(name.as_str());
        if !s.starts_with('-') || s == "-" {
            in_command = true;
        } else if VALUE_OPTIONS.contains(&effective) && !has_inline_value {
            expect_value = true;
        }
        match rewritten {
            Some(r) => out.push(OsString::from(r)),
            None => out.push(arg),
        }
    }
    out
}

/// Parses `-x` items into (name, value) pairs, reading unset values from this environment.
pub fn parse_exports(items: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for item in items {
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n.to_string(), v.to_string()),
            None => {
                let v = std::env::var(item)
                    .map_err(|_| format!("-x {item}: {item} is not set in this environment"))?;
                (item.clone(), v)
            }
        };
        let valid_name = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(format!("-x {item}: `{name}` is not a valid variable name"));
        }
        out.push((name, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let args = normalize_args(args.iter().map(OsString::from));
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn mpirun_spellings() {
        let c = parse(&["rmpirun", "-np", "4", "-hostfile", "h", "./app", "-np", "x"]);
        assert_eq!(c.np, Some(4));
        assert_eq!(c.hostfile, Some(PathBuf::from("h")));
        assert_eq!(c.command, vec!["./app", "-np", "x"]);
        let c = parse(&["rmpirun", "-n", "2", "--machinefile", "m", "-x", "A", "-x", "B=1", "a"]);
        assert_eq!(c.np, Some(2));
        assert_eq!(c.hostfile, Some(PathBuf::from("m")));
        assert_eq!(c.export, vec!["A", "B=1"]);
        let c = parse(&["rmpirun", "-c", "3", "-f", "m", "-H", "a,b:2", "--map-by", "node", "x"]);
        assert_eq!(c.np, Some(3));
        assert_eq!(c.hosts, vec!["a,b:2"]);
        assert_eq!(c.map_by, MapBy::Node);
        let c =
            parse(&["rmpirun", "--oversubscribe", "--tag-output", "-v", "--timeout", "2.5", "a"]);
        assert!(c.oversubscribe && c.tag_output && c.verbose);
        assert_eq!(c.timeout, Some(Duration::from_millis(2500)));
        let c = parse(&["rmpirun", "-wdir", "/tmp", "-oversubscribe", "a", "-wdir"]);
        assert_eq!(c.wdir.as_deref(), Some("/tmp"));
        assert!(c.oversubscribe);
        assert_eq!(c.command, vec!["a", "-wdir"]);
        let c = parse(&["rmpirun", "-np=2", "--", "-weird-program"]);
        assert_eq!(c.np, Some(2));
        assert_eq!(c.command, vec!["-weird-program"]);
    }

    #[test]
    fn program_is_required() {
        let args = normalize_args(["rmpirun", "-n", "2"].iter().map(OsString::from));
        assert!(Cli::try_parse_from(args).is_err());
    }

    #[test]
    fn absurd_timeouts_are_usage_errors() {
        for (opt, value) in [
            ("--timeout", "1e20"),
            ("--timeout", "0"),
            ("--boot-timeout", "18446744073709551615"),
            ("--boot-timeout", "-1"),
            ("--connect-timeout", "18446744073709551615"),
        ] {
            let args = normalize_args(["rmpirun", opt, value, "a"].iter().map(OsString::from));
            let e = Cli::try_parse_from(args).unwrap_err().to_string();
            assert!(e.contains(opt), "{opt} {value}: {e}");
        }
        let c = parse(&["rmpirun", "--boot-timeout", "0.5", "a"]);
        assert_eq!(c.boot_timeout, Duration::from_millis(500));
    }

    #[test]
    fn launch_tree_option() {
        use crate::tree::LaunchTree;
        assert_eq!(parse(&["rmpirun", "a"]).launch_tree, LaunchTree::Auto);
        assert_eq!(parse(&["rmpirun", "--launch-tree", "flat", "a"]).launch_tree, LaunchTree::Flat);
        assert_eq!(
            parse(&["rmpirun", "--launch-tree", "8", "a"]).launch_tree,
            LaunchTree::Fanout(8)
        );
        let args =
            normalize_args(["rmpirun", "--launch-tree", "x", "a"].iter().map(OsString::from));
        assert!(Cli::try_parse_from(args).unwrap_err().to_string().contains("--launch-tree"));
    }

    #[test]
    fn exports() {
        std::env::set_var("RMPIRUN_TEST_EXPORT", "v1");
        let e = parse_exports(&["RMPIRUN_TEST_EXPORT".into(), "B=x=y".into()]).unwrap();
        assert_eq!(
            e,
            vec![("RMPIRUN_TEST_EXPORT".into(), "v1".into()), ("B".into(), "x=y".into())]
        );
        assert!(parse_exports(&["RMPIRUN_SURELY_UNSET_VAR".into()]).is_err());
        assert!(parse_exports(&["1A=2".into()]).is_err());
        assert!(parse_exports(&["A-B=2".into()]).is_err());
    }
}
