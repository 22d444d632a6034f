//! Raw-TCP baseline of `osu_bw`: the same test over one plain loopback socket between this
//! process and a copy of itself. Usage: `osu_tcp_bw [-m MIN:MAX] [-i ITERS] [-x WARMUP]`.

fn main() -> std::process::ExitCode {
    rmpi_benches::exit_code("osu_tcp_bw", rmpi_benches::tcp_p2p(rmpi_benches::P2pTest::Bandwidth))
}
