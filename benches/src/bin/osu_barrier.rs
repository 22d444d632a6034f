//! OSU-style latency test of rmpi's `barrier` collective. Usage:
//! `rmpirun -n N osu_barrier [-m MIN:MAX] [-i ITERS] [-x WARMUP] [-f]`.

use rmpi_benches::coll::{self, Coll};

fn main() -> std::process::ExitCode {
    rmpi_benches::exit_code("osu_barrier", coll::main(Coll::Barrier))
}
