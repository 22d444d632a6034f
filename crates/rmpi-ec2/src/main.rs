//! `rmpi-ec2`: write an rmpi (or Open MPI / MPICH) hostfile listing the running EC2 instances
//! that carry the given tags.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use rmpi_ec2::env::Env;
use rmpi_ec2::hostfile::{AddressKind, Format, Options, Slots};
use rmpi_ec2::imds::Imds;
use rmpi_ec2::query::{self, Client};
use rmpi_ec2::select::{TagSelector, DEFAULT_ORDER_TAG};
use rmpi_ec2::wait::{self, WaitSpec};
use rmpi_ec2::{credentials, region, Error, Result};

#[derive(Parser)]
#[command(name = "rmpi-ec2", version, about = "Discover EC2 instances for rmpirun")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a hostfile of the running instances that carry every given tag.
    Hostfile(HostfileArgs),
}

#[derive(clap::Args)]
struct HostfileArgs {
    /// Select instances by tag: `Key=Value` (that value) or `Key` (any value). Repeatable; all
    /// must match.
    #[arg(long = "tag", value_name = "KEY[=VALUE]", required = true)]
    tags: Vec<TagSelector>,

    /// Slots per host: `vcpus` (the instance type's vCPU count), `cores` (physical cores) or a
    /// number.
    #[arg(long, default_value = "vcpus", value_name = "vcpus|cores|N")]
    slots: Slots,

    /// Which address of each instance to write.
    #[arg(long, value_enum, default_value = "private-ip")]
    address: AddressKind,

    /// Output format.
    #[arg(long, value_enum, default_value = "rmpi")]
    format: Format,

    /// SSH user to write on each line (`user@host`; rmpi format only).
    #[arg(long)]
    user: Option<String>,

    /// SSH port: written on each line (rmpi format only) and probed by --ssh-check.
    #[arg(long, value_name = "PORT")]
    ssh_port: Option<u16>,

    /// Tag whose value orders the hosts (numbers first, ascending); then launch time, then id.
    #[arg(long, default_value = DEFAULT_ORDER_TAG, value_name = "KEY")]
    order_tag: String,

    /// Wait until at least N matching instances are running and have their address.
    #[arg(long, value_name = "N")]
    wait: Option<usize>,

    /// With --wait: give up after this many seconds.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    timeout: u64,

    /// With --wait: also wait until each instance's SSH port (22 or --ssh-port) answers.
    #[arg(long, requires = "wait")]
    ssh_check: bool,

    /// AWS region (else AWS_REGION, AWS_DEFAULT_REGION, the profile, the instance metadata).
    #[arg(long)]
    region: Option<String>,

    /// Profile of the shared AWS config files (else AWS_PROFILE, else `default`).
    #[arg(long)]
    profile: Option<String>,

    /// EC2 endpoint URL (else AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL, the region's endpoint).
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,

    /// DescribeInstances page size (MaxResults, 5 to 1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(5..=1000))]
    page_size: u32,

    /// Print no progress or summary on standard error.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Hostfile(args) = cli.command;
    match run(&args) {
        Ok(text) => {
            let mut stdout = std::io::stdout().lock();
            match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("rmpi-ec2: writing the hostfile: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("rmpi-ec2: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &HostfileArgs) -> Result<String> {
    let options = Options {
        format: args.format,
        address: args.address,
        slots: args.slots,
        user: args.user.clone(),
        port: args.ssh_port,
    };
    options.validate()?;
    if args.wait == Some(0) {
        return Err(Error::Usage("--wait needs at least 1 instance".into()));
    }
    let env = Env::from_process();
    let imds = Imds::from_env(&env);
    let region =
        region::resolve(args.region.as_deref(), args.profile.as_deref(), &env, imds.as_ref())?;
    let creds = credentials::resolve(args.profile.as_deref(), &env, imds.as_ref())?;
    let endpoint = query::endpoint_url(args.endpoint_url.as_deref(), &env, &region.region);
    let client = Client::new(&endpoint, &region.region, creds.credentials)?;
    let say = |line: &str| {
        if !args.quiet {
            eprintln!("rmpi-ec2: {line}");
        }
    };
    say(&format!(
        "region {} (from {}), credentials from {}, endpoint {}",
        region.region,
        region.source,
        creds.source,
        client.endpoint()
    ));
    let instances = match args.wait {
        Some(count) => {
            let ssh_port = args.ssh_check.then(|| args.ssh_port.unwrap_or(22));
            let spec =
                WaitSpec::new(count, Duration::from_secs(args.timeout), args.address, ssh_port);
            wait::wait(
                &client,
                &args.tags,
                &args.order_tag,
                Some(args.page_size),
                &spec,
                &mut |l| say(l),
            )?
        }
        None => {
            rmpi_ec2::running_instances(&client, &args.tags, &args.order_tag, Some(args.page_size))?
        }
    };
    let text = rmpi_ec2::hostfile(&client, &instances, &options)?;
    say(&format!("{} hosts", instances.len()));
    Ok(text)
}
