//! OSU-style latency test of rmpi's `scan` collective. Usage:
//! `rmpirun -n N osu_scan [-m MIN:MAX] [-i ITERS] [-x WARMUP] [-f]`.

use rmpi_benches::coll::{self, Coll};

fn main() -> std::process::ExitCode {
    rmpi_benches::exit_code("osu_scan", coll::main(Coll::Scan))
}
