//! OSU-style windowed bandwidth test of rmpi (2 ranks). Usage:
//! `rmpirun -n 2 osu_bw [-m MIN:MAX] [-i ITERS] [-x WARMUP]`.

fn main() -> std::process::ExitCode {
    rmpi_benches::exit_code("osu_bw", rmpi_benches::rmpi_p2p(rmpi_benches::P2pTest::Bandwidth))
}
