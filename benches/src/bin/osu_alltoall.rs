//! OSU-style latency test of rmpi's `alltoall` collective. Usage:
//! `rmpirun -n N osu_alltoall [-m MIN:MAX] [-i ITERS] [-x WARMUP] [-f]`.

use rmpi_benches::coll::{self, Coll};

fn main() -> std::process::ExitCode {
    rmpi_benches::exit_code("osu_alltoall", coll::main(Coll::Alltoall))
}
