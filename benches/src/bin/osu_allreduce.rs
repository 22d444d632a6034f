//! OSU-style latency test of rmpi's `allreduce` collective. Usage:
//! `rmpirun -n N osu_allreduce [-m MIN:MAX] [-i ITERS] [-x WARMUP] [-f]`.

use rmpi_benches::coll::{self, Coll};

fn main() -> std::process::ExitCode {
    rmpi_benches::exit_code("osu_allreduce", coll::main(Coll::Allreduce))
}
