//! OSU-style latency test of rmpi's `allgather` collective. Usage:
//! `rmpirun -n N osu_allgather [-m MIN:MAX] [-i ITERS] [-x WARMUP] [-f]`.

use rmpi_benches::coll::{self, Coll};

fn main() -> std::process::ExitCode {
    rmpi_benches::exit_code("osu_allgather", coll::main(Coll::Allgather))
}
