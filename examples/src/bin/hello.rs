//! Every rank says who and where it is: `rmpirun -n 4 target/release/hello`.

fn main() -> Result<(), rmpi::Error> {
    let world = rmpi::init()?;
    println!("hello from rank {} of {} on {}", world.rank(), world.size(), world.processor_name());
    world.finalize()
}
