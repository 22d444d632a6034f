//! OSU-style latency test of rmpi's `reduce` collective. Usage:
//! `rmpirun -n N osu_reduce [-m MIN:MAX] [-i ITERS] [-x WARMUP] [-f]`.

use rmpi_benches::coll::{self, Coll};

fn main() -> std::process::ExitCode {
    rmpi_benches::exit_code("osu_reduce", coll::main(Coll::Reduce))
}
