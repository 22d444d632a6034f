//! The host-load polling policy: how a waiting call polls before it sleeps.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a rank with local peers still polls when other load keeps the cores busy (at most
/// its `spin`): a message through shared memory needs no system call, and a wake-up waits for
/// the scheduler, which under load can take a time slice; a bounded poll catches the replies of
/// a peer that is running right now and gives the core up soon after.
pub(super) const LOADED_SPIN: Duration = Duration::from_micros(20);

/// The policy a user asks for (`RMPI_POLLING`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// Follow the host's load ([`Polling::for_host`]); the default.
    Auto,
    /// Always [`Polling::Busy`].
    Busy,
    /// Always [`Polling::Yielding`].
    Yield,
    /// Never poll: sleep at once.
    Off,
}

impl Mode {
    /// The mode the process environment asks for (`RMPI_POLLING`, default `auto`).
    pub(super) fn from_env() -> Result<Mode> {
        match std::env::var(crate::env::POLLING) {
            Ok(s) => Mode::parse(&s),
            Err(_) => Ok(Mode::Auto),
        }
    }

    fn parse(s: &str) -> Result<Mode> {
        match s.trim() {
            "" | "auto" => Ok(Mode::Auto),
            "busy" => Ok(Mode::Busy),
            "yield" => Ok(Mode::Yield),
            "none" => Ok(Mode::Off),
            _ => Err(Error::Env {
                var: crate::env::POLLING,
                msg: format!("{s:?} is none of auto, busy, yield, none"),
            }),
        }
    }

    /// The policy for a wait beginning `now`, and how long it polls at most, for a rank with
    /// `ranks_on_host` ranks of its job here whose configured poll is `spin`; `local_peers`
    /// says whether it shares memory with some of them.
    pub(super) fn policy(
        self,
        spin: Duration,
        (ranks_on_host, local_peers): (usize, bool),
        now: Instant,
    ) -> (Polling, Duration) {
        if spin.is_zero() {
            return (Polling::None, Duration::ZERO);
        }
        let polling = match self {
            Mode::Auto => Polling::for_host(ranks_on_host, now),
            Mode::Busy => return (Polling::Busy, spin),
            Mode::Yield => return (Polling::Yielding, spin),
            Mode::Off => return (Polling::None, Duration::ZERO),
        };
        match polling {
            // Over TCP a poll under load only burns the credit the peer needs (the wake-up goes
            // through the kernel anyway); through shared memory a short one pays off.
            Polling::None if local_peers => (Polling::Busy, spin.min(LOADED_SPIN)),
            Polling::None => (Polling::None, Duration::ZERO),
            p => (p, spin),
        }
    }
}

/// How a waiting call polls before it sleeps, chosen from the host's load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Polling {
    /// Every running task has a core: poll without giving the core up.
    Busy,
    /// The job's own ranks outnumber the cores (or one task beyond them passes by): poll, and
    /// yield the core after every look. The rank being waited for may share this core; yielding
    /// runs it at once, where sleeping would cost a wake-up (an inter-processor interrupt, which
    /// in a VM means a VM exit); docs/performance.md ("Waiting policy") has the measurements.
    Yielding,
    /// Other load on the host: do not poll. A polling rank burns the scheduler credit its peer
    /// needs, and a round trip then waits for a time slice instead of a wake-up (measured in
    /// docs/performance.md, "Waiting policy").
    None,
}

impl Polling {
    /// The policy for a job with `ranks_on_host` ranks here at `now`, from the kernel's count of
    /// running tasks (see [`host_running_tasks`]).
    pub(super) fn for_host(ranks_on_host: usize, now: Instant) -> Polling {
        let cores = host_cores();
        match host_running_tasks(now) {
            None => Polling::Busy,
            Some(running) => Polling::choose(running, cores, ranks_on_host),
        }
    }

    fn choose(running: usize, cores: usize, ranks_on_host: usize) -> Polling {
        if ranks_on_host > cores {
            // The job crowds the cores by itself; whatever else runs, yielding hands the core
            // to it at once. (The running count swings by one or two with the launcher's
            // threads, so it cannot tell our own ranks from others reliably here.)
            Polling::Yielding
        } else if running <= cores {
            Polling::Busy
        } else if !host_loaded(running, cores) {
            // One passing task (a launcher thread forwarding output).
            Polling::Yielding
        } else {
            Polling::None
        }
    }
}

/// Whether other load keeps the cores busy: more running tasks than the cores and one passer-by.
fn host_loaded(running: usize, cores: usize) -> bool {
    running > cores + 1
}

/// The host's CPUs, like the running count: not this process's affinity mask, which is one CPU
/// for a rank that rmpirun bound to a core. Read once per process.
fn host_cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(host_cpus)
}

/// The number of CPUs online on this host (at least 1).
fn host_cpus() -> usize {
    // SAFETY: sysconf reads a system value; no memory is passed.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n)
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The number of running tasks on this host at `now` (the caller's clock read, so that asking
/// costs none of its own), re-read from `/proc/loadavg` at most every 10 ms,
/// or every 1 ms while it says the host is loaded (a read costs a few microseconds; a count from
/// a passing burst, such as the job starting up, would otherwise stop polling for the whole
/// interval, which can be all of a short benchmark; see docs/performance.md, "Waiting policy").
fn host_running_tasks(now: Instant) -> Option<usize> {
    use std::sync::atomic::AtomicU64;
    use std::sync::OnceLock;
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    static CHECKED_MS: AtomicU64 = AtomicU64::new(0);
    // 0: unknown (no /proc); otherwise the count plus one.
    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    let epoch = *EPOCH.get_or_init(|| now);
    let now_ms = now.saturating_duration_since(epoch).as_millis() as u64 + 1;
    let last = CHECKED_MS.load(Ordering::Relaxed);
    let loaded = RUNNING
        .load(Ordering::Relaxed)
        .checked_sub(1)
        .is_some_and(|n| host_loaded(n, host_cores()));
    let every = if loaded { 1 } else { 10 };
    if last == 0 || now_ms.saturating_sub(last) >= every {
        CHECKED_MS.store(now_ms, Ordering::Relaxed);
        let running = std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| running_tasks(&s));
        RUNNING.store(running.map_or(0, |n| n + 1), Ordering::Relaxed);
    }
    RUNNING.load(Ordering::Relaxed).checked_sub(1)
}

/// The running-task count of a `/proc/loadavg` line (`0.50 0.40 0.30 3/512 12345` gives 3).
fn running_tasks(loadavg: &str) -> Option<usize> {
    loadavg.split_whitespace().nth(3)?.split('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn loadavg_running_count() {
        assert_eq!(super::running_tasks("0.50 0.40 0.30 3/512 12345\n"), Some(3));
        assert_eq!(super::running_tasks("garbage"), None);
        // Whatever the host's state, the check answers without panicking.
        let now = std::time::Instant::now();
        let _ = super::Polling::for_host(4, now);
        let _ = super::Mode::Auto.policy(std::time::Duration::from_micros(50), (2, true), now);
        // The host's CPUs, never fewer than this process may use.
        let usable = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert!(super::host_cpus() >= usable);
    }

    #[test]
    fn polling_follows_the_load() {
        use super::Polling;
        // 2 ranks on 2 cores: busy while everyone has a core, yielding with one passing task,
        // not at all under other load.
        assert_eq!(Polling::choose(2, 2, 2), Polling::Busy);
        assert_eq!(Polling::choose(3, 2, 2), Polling::Yielding);
        assert_eq!(Polling::choose(4, 2, 2), Polling::None);
        assert_eq!(Polling::choose(3, 2, 1), Polling::Yielding);
        // 4 ranks on 2 cores crowd the cores by themselves: always yielding.
        assert_eq!(Polling::choose(4, 2, 4), Polling::Yielding);
        assert_eq!(Polling::choose(9, 2, 4), Polling::Yielding);
    }

    #[test]
    fn the_mode_is_parsed_and_bounds_every_poll() {
        use super::{Mode, Polling, LOADED_SPIN};
        use std::time::Duration;
        assert_eq!(Mode::parse("auto").unwrap(), Mode::Auto);
        assert_eq!(Mode::parse(" busy ").unwrap(), Mode::Busy);
        assert_eq!(Mode::parse("yield").unwrap(), Mode::Yield);
        assert_eq!(Mode::parse("none").unwrap(), Mode::Off);
        assert_eq!(Mode::parse("").unwrap(), Mode::Auto);
        let err = Mode::parse("fast").unwrap_err().to_string();
        assert!(err.contains("RMPI_POLLING") && err.contains("fast"), "{err}");
        let spin = Duration::from_micros(50);
        let now = std::time::Instant::now();
        assert_eq!(Mode::Busy.policy(spin, (2, false), now), (Polling::Busy, spin));
        assert_eq!(Mode::Yield.policy(spin, (2, true), now), (Polling::Yielding, spin));
        assert_eq!(Mode::Off.policy(spin, (2, true), now), (Polling::None, Duration::ZERO));
        // No spin configured: no poll, whatever the mode.
        for m in [Mode::Auto, Mode::Busy, Mode::Yield, Mode::Off] {
            assert_eq!(m.policy(Duration::ZERO, (2, true), now), (Polling::None, Duration::ZERO));
        }
        // Whatever the load, auto never polls longer than asked, and a rank with local peers
        // polls under load for at most the loaded bound.
        for local in [false, true] {
            let (p, d) = Mode::Auto.policy(spin, (2, local), now);
            assert!(d <= spin);
            if !local {
                assert!(p != Polling::None || d.is_zero());
            }
        }
        let short = Duration::from_micros(5);
        assert!(Mode::Auto.policy(short, (2, true), now).1 <= short);
        assert!(LOADED_SPIN <= spin);
    }
}
