//! Every rank says who and where it is: `rmpirun -n 4 target/release/hello`.
//!
//! "Where" is the launcher's name for the rank's host (`host_of`: the hostfile's spelling, or the
//! Slurm node name), so the lines match what you asked for; `processor_name()` would give the
//! host's own name (`gethostname`).

fn main() -> Result<(), rmpi::Error> {
    let world = rmpi::init()?;
    let host = world.host_of(world.rank())?;
    println!("hello from rank {} of {} on {host}", world.rank(), world.size());
    world.finalize()
}
