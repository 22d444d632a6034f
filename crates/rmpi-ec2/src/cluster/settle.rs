//! Retrying a deletion that EC2 refuses while something still depends on the resource (a
//! security group whose network interfaces are still being detached from terminated instances,
//! a placement group whose instances are still shutting down), until a deadline.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Runs `attempt` until it succeeds, fails with an error code not in `busy_codes`, or
/// `deadline` passes (then the last error is returned, wrapped with `what`). Waits 2 s growing
/// to 10 s between attempts, never past the deadline.
pub fn until_done(
    what: &str,
    busy_codes: &[&str],
    deadline: Instant,
    mut attempt: impl FnMut() -> Result<()>,
) -> Result<()> {
    let started = Instant::now();
    let mut delay = Duration::from_secs(2);
    loop {
        match attempt() {
            Ok(()) => return Ok(()),
            Err(e) if e.ec2_code().is_some_and(|c| busy_codes.contains(&c)) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(Error::Timeout {
                        waited_secs: started.elapsed().as_secs(),
                        what: format!("{what} ({e})"),
                    });
                }
                std::thread::sleep(delay.min(deadline - now));
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e.during(what.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str) -> Error {
        Error::Api {
            action: "DeleteSecurityGroup".into(),
            status: 400,
            code: code.into(),
            message: "m".into(),
            hint: String::new(),
        }
    }

    #[test]
    fn busy_is_retried_other_errors_are_not() {
        let mut calls = 0;
        let r = until_done(
            "x",
            &["DependencyViolation"],
            Instant::now() + Duration::from_secs(30),
            || {
                calls += 1;
                if calls < 2 {
                    Err(api("DependencyViolation"))
                } else {
                    Ok(())
                }
            },
        );
        assert!(r.is_ok());
        assert_eq!(calls, 2);
        let r = until_done("deleting sg-1", &["DependencyViolation"], Instant::now(), || {
            Err(api("Other"))
        });
        assert!(r.unwrap_err().to_string().starts_with("deleting sg-1: EC2 DeleteSecurityGroup"));
        let r = until_done("deleting sg-1", &["DependencyViolation"], Instant::now(), || {
            Err(api("DependencyViolation"))
        });
        assert!(matches!(r, Err(Error::Timeout { .. })));
    }
}
