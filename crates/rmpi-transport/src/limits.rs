//! The descriptor limit: a rank holds a socket per peer it talks to over TCP.
//!
//! The usual soft limit (1024) is far below what a job of thousands of ranks needs, while the
//! hard limit a user may raise it to is usually much higher. `init` raises the soft limit to the
//! hard one, and refuses, naming both, a job whose connections cannot fit even then.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors kept free for everything else the program opens.
pub const SPARE_DESCRIPTORS: u64 = 64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the limit in force afterwards
/// (`None`: unlimited, or it could not be read).
pub fn raise_descriptor_limit() -> Option<u64> {
    let lim = getrlimit(Resource::Nofile);
    let Some(hard) = lim.maximum else {
        // Unlimited hard limit: ask for a large soft one, keep what we had if refused.
        let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(1 << 20), maximum: None });
        return getrlimit(Resource::Nofile).current;
    };
    if lim.current.is_some_and(|c| c < hard) {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) });
    }
    getrlimit(Resource::Nofile).current
}

/// Checks that `connections` sockets (plus [`SPARE_DESCRIPTORS`]) fit under the descriptor
/// limit after raising it; the error says what to do.
pub(crate) fn ensure_descriptors(connections: usize) -> Result<(), String> {
    let needed = connections as u64 + SPARE_DESCRIPTORS;
    match raise_descriptor_limit() {
        Some(limit) if limit < needed => {
            let hard = getrlimit(Resource::Nofile).maximum;
            let hard = hard.map_or("unlimited".to_string(), |h| h.to_string());
            Err(format!(
                "this rank needs about {needed} file descriptors ({connections} peer connections \
                 and {SPARE_DESCRIPTORS} spare), but the limit is {limit} (hard limit {hard}): \
                 raise it (ulimit -n, or nofile in /etc/security/limits.conf)"
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_goes_up_to_the_hard_one_and_too_many_peers_are_refused() {
        let limit = raise_descriptor_limit().expect("a finite limit");
        let lim = getrlimit(Resource::Nofile);
        assert_eq!(lim.current, Some(limit));
        if let Some(hard) = lim.maximum {
            assert_eq!(limit, hard);
        }
        assert!(ensure_descriptors(10).is_ok());
        let e = ensure_descriptors(limit as usize).unwrap_err();
        assert!(e.contains(&limit.to_string()) && e.contains("ulimit -n"), "{e}");
    }
}
