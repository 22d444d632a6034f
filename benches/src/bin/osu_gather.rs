//! OSU-style latency test of rmpi's `gather` collective. Usage:
//! `rmpirun -n N osu_gather [-m MIN:MAX] [-i ITERS] [-x WARMUP] [-f]`.

use rmpi_benches::coll::{self, Coll};

fn main() -> std::process::ExitCode {
    rmpi_benches::exit_code("osu_gather", coll::main(Coll::Gather))
}
