//! A wall clock for timing code, like MPI's `MPI_Wtime` / `MPI_Wtick`.

use std::sync::OnceLock;
use std::time::Instant;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Seconds since an arbitrary point fixed the first time this process asks, from a monotonic
/// clock (it never goes back, and is not affected by changes to the system time). Differences
/// of two readings on one rank time the code between them; readings of different ranks are not
/// comparable.
///
/// ```
/// let t0 = rmpi::wtime();
/// let t1 = rmpi::wtime();
/// assert!(t1 >= t0);
/// ```
pub fn wtime() -> f64 {
    epoch().elapsed().as_secs_f64()
}

/// The resolution of [`wtime`] in seconds (one nanosecond: `Instant`'s unit on Linux).
pub fn wtick() -> f64 {
    1e-9
}
