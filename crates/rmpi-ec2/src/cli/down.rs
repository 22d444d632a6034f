//! `rmpi-ec2 down`.

use std::time::Duration;

use rmpi_ec2::cluster::{down, Cluster, Ctx};
use rmpi_ec2::Result;

use super::AwsArgs;

#[derive(clap::Args)]
pub struct DownArgs {
    /// The cluster to take down.
    #[arg(long, value_name = "NAME")]
    cluster: Cluster,

    /// Give up waiting for the instances to terminate (and the groups to be deletable) after
    /// this many seconds.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    timeout: u64,

    /// Print what would be done; change nothing.
    #[arg(long)]
    dry_run: bool,

    #[command(flatten)]
    aws: AwsArgs,
}

pub fn run(args: &DownArgs) -> Result<()> {
    let client = args.aws.connect()?.client;
    let say = |line: &str| args.aws.say(line);
    let ctx = Ctx { client: &client, cluster: &args.cluster, dry_run: args.dry_run, say: &say };
    down::down(&ctx, Duration::from_secs(args.timeout))?;
    Ok(())
}
