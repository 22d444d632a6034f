//! OSU-style latency test of rmpi's `bcast` collective. Usage:
//! `rmpirun -n N osu_bcast [-m MIN:MAX] [-i ITERS] [-x WARMUP] [-f]`.

use rmpi_benches::coll::{self, Coll};

fn main() -> std::process::ExitCode {
    rmpi_benches::exit_code("osu_bcast", coll::main(Coll::Bcast))
}
