//! The `rmpirun` binary; see the library crate for the modules.

fn main() {
    std::process::exit(rmpirun::launcher::main());
}
