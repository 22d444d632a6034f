//! OSU-style latency test of rmpi's `scatter` collective. Usage:
//! `rmpirun -n N osu_scatter [-m MIN:MAX] [-i ITERS] [-x WARMUP] [-f]`.

use rmpi_benches::coll::{self, Coll};

fn main() -> std::process::ExitCode {
    rmpi_benches::exit_code("osu_scatter", coll::main(Coll::Scatter))
}
