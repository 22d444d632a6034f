//! `rmpi-ec2 hostfile`.

use std::time::Duration;

use rmpi_ec2::select::{TagSelector, DEFAULT_ORDER_TAG};
use rmpi_ec2::wait::{self, WaitSpec};
use rmpi_ec2::{Error, Result};

use super::{AwsArgs, OutputArgs};

#[derive(clap::Args)]
pub struct HostfileArgs {
    /// Select instances by tag: `Key=Value` (that value) or `Key` (any value). Repeatable; all
    /// must match.
    #[arg(long = "tag", value_name = "KEY[=VALUE]", required = true)]
    tags: Vec<TagSelector>,

    #[command(flatten)]
    output: OutputArgs,

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

    /// DescribeInstances page size (MaxResults, 5 to 1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(5..=1000))]
    page_size: u32,

    #[command(flatten)]
    aws: AwsArgs,
}

pub fn run(args: &HostfileArgs) -> Result<()> {
    let options = args.output.options()?;
    if args.wait == Some(0) {
        return Err(Error::Usage("--wait needs at least 1 instance".into()));
    }
    let client = args.aws.connect()?.client;
    let say = |line: &str| args.aws.say(line);
    let instances = match args.wait {
        Some(count) => {
            let ssh_port = args.ssh_check.then(|| args.output.ssh_port.unwrap_or(22));
            let spec = WaitSpec::new(
                count,
                Duration::from_secs(args.timeout),
                args.output.address,
                ssh_port,
            );
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
    super::print(&text)
}
