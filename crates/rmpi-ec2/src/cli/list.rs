//! `rmpi-ec2 list`.

use std::time::{SystemTime, UNIX_EPOCH};

use rmpi_ec2::cluster::list;
use rmpi_ec2::Result;

use super::AwsArgs;

#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    aws: AwsArgs,
}

pub fn run(args: &ListArgs) -> Result<()> {
    let client = args.aws.connect()?.client;
    let clusters = list::list(&client)?;
    if clusters.is_empty() {
        args.aws.say(&format!("no clusters made by rmpi-ec2 up in {}", client.region()));
        return Ok(());
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    super::print(&list::render(&clusters, now))
}
