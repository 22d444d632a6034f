//! `rmpi-ec2`: bring an rmpi cluster up on EC2 and down again, list the clusters, or write an
//! rmpi (or Open MPI / MPICH) hostfile of the running instances that carry given tags.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "rmpi-ec2", version, about = "Run rmpi clusters on EC2")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a hostfile of the running instances that carry every given tag.
    Hostfile(cli::hostfile::HostfileArgs),
    /// Launch a cluster (key pair, security group, placement group, instances), wait until it
    /// is ready and write its hostfile.
    Up(cli::up::UpArgs),
    /// Terminate a cluster's instances and delete what `up` made for it.
    Down(cli::down::DownArgs),
    /// List the clusters `up` made.
    List(cli::list::ListArgs),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Hostfile(args) => cli::hostfile::run(&args),
        Command::Up(args) => cli::up::run(&args),
        Command::Down(args) => cli::down::run(&args),
        Command::List(args) => cli::list::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rmpi-ec2: {e}");
            ExitCode::FAILURE
        }
    }
}
