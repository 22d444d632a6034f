//! The `rmpirun` binary; see the library crate for the modules.

fn main() {
    // The rendezvous server runs here: its refusals (wrong tokens, strays) go to stderr.
    rmpi_transport::log::install_default();
    std::process::exit(rmpirun::launcher::main());
}
