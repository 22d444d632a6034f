//! Run `n` ranks as threads of this process, over the real transports: shared memory between
//! them (threads of one process are one host), or loopback TCP with `RMPI_SHM=0`.
//!
//! This is how rmpi's own tests, and users' tests, exercise multi-rank code inside `cargo test`:
//! every rank goes through the same rendezvous, handshake and transports as a launched job.

use std::net::SocketAddr;
use std::time::Duration;

use crate::comm::Communicator;
use crate::env::{BootConfig, DEFAULT_SPIN};
use crate::error::{Error, Result};
use crate::rendezvous::RendezvousServer;
use crate::token::JobToken;

/// Options for [`run_with`].
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// Deadline for the job to assemble.
    pub boot_timeout: Duration,
    /// How long a wait polls before it sleeps (default 50 µs; how it polls follows the load,
    /// see [`BootConfig::spin`]).
    pub spin: Option<Duration>,
    /// Largest accepted message.
    pub max_message: u64,
}

impl Default for LocalOptions {
    fn default() -> Self {
        LocalOptions {
            boot_timeout: Duration::from_secs(30),
            spin: None,
            max_message: crate::env::DEFAULT_MAX_MESSAGE,
        }
    }
}

/// Runs `f` on `n` ranks (threads) joined into one world, and returns each
/// rank's result in rank order. The first error any rank returns is returned (after all ranks
/// have finished). A panic in a rank is propagated.
///
/// ```
/// let ranks = rmpi::local::run(3, |world| Ok(world.rank() * 10))?;
/// assert_eq!(ranks, vec![0, 10, 20]);
/// # Ok::<(), rmpi::Error>(())
/// ```
pub fn run<R, F>(n: usize, f: F) -> Result<Vec<R>>
where
    R: Send,
    F: Fn(Communicator) -> Result<R> + Sync,
{
    run_with(n, &LocalOptions::default(), f)
}

/// [`run`] with options.
pub fn run_with<R, F>(n: usize, opts: &LocalOptions, f: F) -> Result<Vec<R>>
where
    R: Send,
    F: Fn(Communicator) -> Result<R> + Sync,
{
    let token = JobToken::generate();
    let server =
        RendezvousServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), n, token, opts.boot_timeout)?;
    let addr = server.local_addr();
    let server = server.spawn();
    let spin = opts.spin.unwrap_or(DEFAULT_SPIN);
    let results: Vec<Result<R>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|rank| {
                let f = &f;
                let mut cfg = BootConfig::new(rank, n, token, addr);
                cfg.boot_timeout = opts.boot_timeout;
                cfg.spin = spin;
                cfg.ranks_on_host = n;
                cfg.max_message = opts.max_message;
                cfg.host_label = Some(format!("local{rank}"));
                std::thread::Builder::new().name(format!("rank-{rank}")).spawn_scoped(
                    s,
                    move || {
                        let world = Communicator::join(&cfg)?;
                        let out = f(world.clone());
                        let fin = world.finalize();
                        let out = out?;
                        fin?;
                        Ok(out)
                    },
                )
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h {
                Ok(h) => match h.join() {
                    Ok(r) => r,
                    Err(p) => std::panic::resume_unwind(p),
                },
                Err(e) => Err(Error::io("spawning a rank thread", e)),
            })
            .collect()
    });
    let _ = server.join();
    results.into_iter().collect()
}
