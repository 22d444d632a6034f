//! Benchmarks of rmpi: OSU-style table programs (`src/bin/osu_*.rs`), a raw-TCP baseline
//! (`osu_tcp_latency`, `osu_tcp_bw`) and criterion benches (`benches/*.rs`).
//!
//! Every program is a few lines calling into this library, so the timing, option and table
//! code exists once:
//!
//! * [`options`]: the OSU command line (`-m MIN:MAX`, `-i`, `-x`, `-f`) and the size and
//!   iteration schedule.
//! * [`table`]: the OSU output layout.
//! * [`link`]: the two-party [`Link`] the point-to-point tests run over, for rmpi
//!   and for a raw TCP socket.
//! * [`p2p`]: ping-pong latency and windowed bandwidth loops and tables.
//! * [`tcp`]: the raw-TCP baseline's second process.
//! * [`coll`]: the collective tests (OSU timing: each call alone, barrier between calls,
//!   per-rank averages reduced to rank 0).
//! * [`driver`]: rank 0 ordering the other ranks through measurements (criterion benches).
//! * [`error`]: the error type, [`BenchError`].
//!
//! # The programs
//!
//! | program | ranks | what |
//! | --- | --- | --- |
//! | `osu_latency` | 2 | ping-pong, one-way latency (half a round trip), 0 B to 16 MiB |
//! | `osu_bw` | 2 | 64 nonblocking zero-copy sends, then a 4-byte ack; MB/s = 10^6 B/s |
//! | `osu_bcast` ... `osu_scan` | any | average latency of one collective call, 8 B to 16 MiB |
//! | `osu_barrier` | any | average latency of one barrier (one row, size 0) |
//! | `osu_tcp_latency`, `osu_tcp_bw` | (2 processes) | the same over a plain socket, no rmpi |
//!
//! Run the rmpi ones under the launcher, e.g.
//! `target/release/rmpirun -n 2 target/release/osu_latency -m 0:4096`; rank 0 prints. The
//! raw-TCP ones start their own peer process: `target/release/osu_tcp_latency`.
//! Iterations: `-i` (default 1000, bandwidth 100) for messages up to 8 KiB, scaled down as
//! 1/size above that (at least 20 for latency, 1 for bandwidth, 10 for collectives); warm-up
//! `-x` (default a tenth of that). Memory: `osu_bw`'s receiver needs a distinct buffer for each
//! of the 64 messages in flight, 64 x MAX bytes (1 GiB with the default 16 MiB MAX; lower it
//! with `-m MIN:MAX` on small machines).
//!
//! The criterion benches (`cargo bench -p rmpi-benches`, about 3 to 5 minutes) run the ranks as
//! threads of the bench process (`rmpi::local`): `p2p` (latency and bandwidth, 0 B to 16 MiB)
//! and `collectives` (allreduce, bcast, reduce, gather, scatter, allgather, alltoall on 2 and 4
//! ranks, 8 B to 16 MiB). Filter as usual: `cargo bench -p rmpi-benches --bench p2p -- latency`.

use std::process::ExitCode;

pub mod coll;
pub mod driver;
pub mod error;
pub mod link;
pub mod options;
pub mod p2p;
pub mod table;
pub mod tcp;

pub use error::{BenchError, Result};

use link::{Link, RmpiLink};
use options::{Defaults, Options};
use p2p::Role;

/// The two point-to-point tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum P2pTest {
    /// Ping-pong, one-way latency.
    Latency,
    /// Windowed streaming bandwidth.
    Bandwidth,
}

impl P2pTest {
    /// The option defaults of the test.
    pub fn defaults(self) -> Defaults {
        match self {
            P2pTest::Latency => Defaults::LATENCY,
            P2pTest::Bandwidth => Defaults::BANDWIDTH,
        }
    }

    /// Runs the sweep over `link`; the initiator prints the table under `impl_name`.
    pub fn run<L: Link>(
        self,
        link: &mut L,
        role: Role,
        opts: &Options,
        impl_name: &str,
    ) -> Result<()> {
        match self {
            P2pTest::Latency => p2p::latency_table(link, role, opts, impl_name),
            P2pTest::Bandwidth => p2p::bandwidth_table(link, role, opts, impl_name),
        }
    }
}

/// The body of `osu_latency` / `osu_bw`: two ranks of an rmpi job.
pub fn rmpi_p2p(test: P2pTest) -> Result<()> {
    let opts = Options::from_env(test.defaults());
    let world = rmpi::init()?;
    if world.size() != 2 {
        return Err(BenchError::Usage(format!(
            "this test needs exactly 2 ranks, the job has {}",
            world.size()
        )));
    }
    let role = if world.rank() == 0 { Role::Initiator } else { Role::Responder };
    let mut link = RmpiLink::new(world.clone(), 1 - world.rank());
    test.run(&mut link, role, &opts, "rmpi")?;
    drop(link);
    Ok(world.finalize()?)
}

/// The body of `osu_tcp_latency` / `osu_tcp_bw`: this process and a copy of itself over one
/// loopback TCP socket.
pub fn tcp_p2p(test: P2pTest) -> Result<()> {
    let mut opts = Options::from_env(test.defaults());
    // A socket has no empty messages: a 0-byte "message" would not touch the network.
    opts.min_size = opts.min_size.max(1);
    let mut ep = tcp::Endpoint::establish()?;
    let role = ep.role;
    test.run(&mut ep.link, role, &opts, "raw-TCP")?;
    ep.finish()
}

/// Turns a program's result into its exit status, printing a failure as one line on stderr.
pub fn exit_code(program: &str, result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}");
            ExitCode::FAILURE
        }
    }
}
