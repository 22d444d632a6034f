//! Which of a job's failures is its cause.
//!
//! When one rank dies, its peers notice the lost connection and fail too, and the launcher may
//! hear of those effects first. Every failure is therefore recorded with what is known of it,
//! and the job's message and exit status are those of the first cause:
//!
//! 1. rmpirun's own reasons (a signal to rmpirun, `--timeout`, its output failing), in the order
//!    they happened;
//! 2. causes: a rank that ended on its own (not after losing a peer, not by its agent's signal),
//!    a rank that could not start, a host that was lost; the earliest by the time its agent (or,
//!    for a host, rmpirun) saw it, then the first reported;
//! 3. effects, only if there is no cause: a rank that failed after losing a peer, or that its
//!    agent ended; the first reported.

use crate::protocol::ExitCause;

/// How a failure ranks as the job's cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// rmpirun's own reason to end the job.
    Launcher,
    /// Something that failed by itself; `at_ms` is when it was seen (Unix epoch, ms).
    Cause { at_ms: u64 },
    /// A consequence of another failure.
    Effect,
}

impl Kind {
    /// The kind of a rank's failed exit, from what its agent said.
    pub fn of_exit(cause: &ExitCause, at_ms: u64) -> Kind {
        match cause {
            ExitCause::Own | ExitCause::Failed(_) => Kind::Cause { at_ms },
            ExitCause::LostPeer(_) | ExitCause::EndedByAgent => Kind::Effect,
        }
    }
}

/// One reason to end the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The message, without rmpirun's prefix.
    pub text: String,
    /// The exit status it implies.
    pub code: i32,
    /// How it ranks.
    pub kind: Kind,
}

impl Failure {
    /// A failure of rmpirun's own.
    pub fn launcher(text: String, code: i32) -> Failure {
        Failure { text, code, kind: Kind::Launcher }
    }
}

/// Milliseconds since the Unix epoch, by this host's clock: when a failure was seen.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The cause of the job among `failures` (in the order they were reported).
pub fn first_cause(failures: &[Failure]) -> Option<&Failure> {
    let rank = |f: &Failure| match f.kind {
        Kind::Launcher => (0, 0),
        Kind::Cause { at_ms } => (1, at_ms),
        Kind::Effect => (2, 0),
    };
    // min_by_key keeps the first of equal keys: the first reported wins ties.
    failures.iter().min_by_key(|f| rank(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(text: &str, kind: Kind) -> Failure {
        Failure { text: text.into(), code: 1, kind }
    }

    #[test]
    fn causes_beat_effects_whatever_the_order_they_arrive_in() {
        let victim = f("rank 1 lost rank 3", Kind::of_exit(&ExitCause::LostPeer(3), 100));
        let killed = f("rank 2 ended", Kind::of_exit(&ExitCause::EndedByAgent, 50));
        let culprit = f("rank 3 killed", Kind::of_exit(&ExitCause::Failed("panicked".into()), 90));
        let all = [victim.clone(), killed.clone(), culprit.clone()];
        assert_eq!(first_cause(&all), Some(&culprit));
        // With no cause at all, the first effect reported.
        assert_eq!(first_cause(&[victim.clone(), killed]), Some(&victim));
        assert_eq!(first_cause(&[]), None);
    }

    #[test]
    fn the_earliest_cause_wins_then_the_first_reported() {
        let late = f("rank 5", Kind::Cause { at_ms: 200 });
        let early = f("rank 4", Kind::Cause { at_ms: 100 });
        let tie = f("rank 6", Kind::Cause { at_ms: 100 });
        assert_eq!(first_cause(&[late.clone(), early.clone(), tie]), Some(&early));
        let sigint = Failure::launcher("interrupted".into(), 130);
        assert_eq!(first_cause(&[early, sigint.clone(), late]), Some(&sigint));
    }
}
