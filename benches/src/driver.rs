//! Keeping ranks alive across criterion iterations: rank 0 runs criterion and, for every
//! measurement it wants, sends the other ranks an [`Order`] (what, size, how many iterations);
//! they [`serve`] orders until told to stop. Orders travel as user point-to-point messages on
//! [`CONTROL_TAG`], which no benchmark uses.

use rmpi::{Communicator, Tag};

use crate::error::{BenchError, Result};

/// Tag of control messages.
pub const CONTROL_TAG: Tag = 0xC0_17_80;

/// `what` of the order that ends [`serve`].
const STOP: u64 = u64::MAX;

/// One measurement every rank takes part in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    /// Which measurement (meaning chosen by the benchmark).
    pub what: u64,
    /// Message size in bytes.
    pub size: u64,
    /// Iterations to run.
    pub iters: u64,
}

impl Order {
    fn words(self) -> [u64; 3] {
        [self.what, self.size, self.iters]
    }
}

/// Rank 0: tells every other rank to take part in `order`.
pub fn give(comm: &Communicator, order: Order) -> Result<()> {
    let words = order.words();
    for r in 1..comm.size() {
        comm.send(&words, r, CONTROL_TAG)?;
    }
    Ok(())
}

/// Rank 0: ends every other rank's [`serve`].
pub fn stop(comm: &Communicator) -> Result<()> {
    give(comm, Order { what: STOP, size: 0, iters: 0 })
}

/// Ranks other than 0: carries out rank 0's orders with `run` until rank 0 calls [`stop`].
pub fn serve(comm: &Communicator, mut run: impl FnMut(Order) -> Result<()>) -> Result<()> {
    loop {
        let mut words = [0u64; 3];
        let st = comm.recv_into(&mut words, 0, CONTROL_TAG)?;
        if st.len != std::mem::size_of_val(&words) {
            return Err(BenchError::Protocol(format!("control message of {} bytes", st.len)));
        }
        let [what, size, iters] = words;
        if what == STOP {
            return Ok(());
        }
        run(Order { what, size, iters })?;
    }
}

/// Converts a size or count received in an order to `usize`.
pub fn to_usize(v: u64) -> Result<usize> {
    usize::try_from(v).map_err(|_| BenchError::Protocol(format!("{v} does not fit a usize")))
}

/// Runs `ranks` ranks as threads of this process (over loopback TCP, `rmpi::local`): rank 0
/// runs `lead` (which gives orders and finally calls [`stop`]), the others run `follow`
/// (normally [`serve`]). A failure of any rank is printed as one line naming `program` and the
/// rank, and the process exits with status 1.
pub fn run_local(
    program: &str,
    ranks: usize,
    lead: impl Fn(&Communicator) -> Result<()> + Sync,
    follow: impl Fn(&Communicator) -> Result<()> + Sync,
) {
    let out = rmpi::local::run(ranks, |world| {
        let r = if world.rank() == 0 { lead(&world) } else { follow(&world) };
        Ok(r.map_err(|e| e.to_string()))
    });
    let failure = match out {
        Ok(results) => results
            .into_iter()
            .enumerate()
            .find_map(|(rank, r)| r.err().map(|e| format!("{ranks} ranks, rank {rank}: {e}"))),
        Err(e) => Some(format!("{ranks} ranks: {e}")),
    };
    if let Some(msg) = failure {
        eprintln!("{program}: {msg}");
        std::process::exit(1);
    }
}

/// For code that cannot return an error (a criterion routine): prints the error as one line
/// and exits with status 1.
pub fn or_exit<T>(r: Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            eprintln!("benchmark failed: {e}");
            std::process::exit(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank_body(world: &Communicator) -> Result<Vec<Order>> {
        let mut seen = Vec::new();
        if world.rank() == 0 {
            for i in 0..3 {
                give(world, Order { what: i, size: 10 * i, iters: 100 + i })?;
            }
            stop(world)?;
        } else {
            serve(world, |o| {
                seen.push(o);
                Ok(())
            })?;
        }
        Ok(seen)
    }

    #[test]
    fn orders_reach_every_rank_in_sequence() {
        let seen =
            rmpi::local::run(3, |world| Ok(rank_body(&world).map_err(|e| e.to_string()))).unwrap();
        let seen: Vec<Vec<Order>> = seen.into_iter().map(|r| r.unwrap()).collect();
        assert!(seen[0].is_empty());
        for s in &seen[1..] {
            let whats: Vec<u64> = s.iter().map(|o| o.what).collect();
            assert_eq!(whats, vec![0, 1, 2]);
            assert_eq!(s[2], Order { what: 2, size: 20, iters: 102 });
        }
    }
}
