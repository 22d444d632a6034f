//! Where rmpi's warnings go when the program has not chosen: one line each on stderr.
//!
//! rmpi reports what it refuses or loses (stray connections, wrong tokens, lost peers) through
//! `tracing`. A program that installs its own `tracing` subscriber gets them there. Otherwise
//! [`install_default`], called by `rmpi::init()` and by `rmpirun`, writes them to stderr at the
//! level `RMPI_LOG` names (default `warn`; also `off`, `error`, `info`, `debug`, `trace`), at most [`BURST`] lines at once and
//! [`PER_SECOND`] a second after that, so a port scan cannot flood the terminal: how many lines
//! were left out is said on the next line written.

use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

/// The variable that sets the level.
pub const LOG: &str = "RMPI_LOG";

/// Lines written at once before the rate limit applies.
pub const BURST: f64 = 20.0;

/// Lines a second written after a burst.
pub const PER_SECOND: f64 = 2.0;

/// Installs the stderr logger as the process's global `tracing` subscriber, unless one is
/// installed already. Returns whether it installed it; a bad `RMPI_LOG` is reported on stderr
/// and the default level used.
pub fn install_default() -> bool {
    use tracing_subscriber::filter::LevelFilter;
    let spec = std::env::var(LOG).unwrap_or_default();
    let level = match spec.trim() {
        "" => LevelFilter::WARN,
        s => s.parse::<LevelFilter>().unwrap_or_else(|_| {
            eprintln!("rmpi: {LOG}={spec:?} is not a log level (off, error, warn, info, debug, trace); using warn");
            LevelFilter::WARN
        }),
    };
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(|| RateLimited(&LIMIT))
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .compact()
        .try_init()
        .is_ok()
}

static LIMIT: Mutex<Bucket> = Mutex::new(Bucket { tokens: BURST, last: None, dropped: 0 });

/// A token bucket of lines.
struct Bucket {
    tokens: f64,
    last: Option<Instant>,
    dropped: u64,
}

impl Bucket {
    /// Whether a line may be written now; if so, how many were dropped before it.
    fn take(&mut self, now: Instant) -> Option<u64> {
        if let Some(last) = self.last {
            let refill = now.saturating_duration_since(last).as_secs_f64() * PER_SECOND;
            self.tokens = (self.tokens + refill).min(BURST);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Some(std::mem::take(&mut self.dropped))
        } else {
            self.dropped += 1;
            None
        }
    }
}

/// The writer of one formatted event (the fmt layer makes one per event).
struct RateLimited(&'static Mutex<Bucket>);

impl Write for RateLimited {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let verdict = match self.0.lock() {
            Ok(mut b) => b.take(Instant::now()),
            Err(_) => Some(0),
        };
        let mut err = std::io::stderr().lock();
        if let Some(dropped) = verdict {
            if dropped > 0 {
                writeln!(err, "rmpi: {dropped} log lines left out (rate limit)")?;
            }
            // The formatter pads the level with a leading blank: "rmpi: WARN ...".
            err.write_all(b"rmpi:")?;
            err.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_a_steady_trickle_and_the_gap_is_counted() {
        let mut b = Bucket { tokens: BURST, last: None, dropped: 0 };
        let t0 = Instant::now();
        let written = (0..100).filter(|_| b.take(t0).is_some()).count();
        assert_eq!(written, BURST as usize);
        // Half a second later one line fits again, and it carries the count of the rest.
        assert_eq!(b.take(t0 + Duration::from_millis(500)), Some(100 - BURST as u64));
        assert_eq!(b.take(t0 + Duration::from_millis(500)), None);
        // A long quiet time refills the burst, never beyond it.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!((0..100).filter(|_| b.take(later).is_some()).count(), BURST as usize);
    }
}
