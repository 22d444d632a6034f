//! `rmpi-ec2 up`.

use std::path::PathBuf;
use std::time::Duration;

use rmpi_ec2::cluster::security_group::parse_cidr;
use rmpi_ec2::cluster::up::{self, UpSpec};
use rmpi_ec2::cluster::{Cluster, Ctx};
use rmpi_ec2::hostfile;
use rmpi_ec2::wait::WaitSpec;
use rmpi_ec2::{Error, Result};

use super::{AwsArgs, OutputArgs};

#[derive(clap::Args)]
pub struct UpArgs {
    /// Cluster name: tags everything made (`Cluster=NAME`) and names the key pair, security
    /// group and placement group (`rmpi-NAME`).
    #[arg(long, value_name = "NAME")]
    cluster: Cluster,

    /// Number of instances.
    #[arg(long, value_name = "N")]
    count: usize,

    /// Instance type.
    #[arg(long = "type", value_name = "TYPE")]
    instance_type: String,

    /// Instance type to try when EC2 has no capacity for the previous ones. Repeatable, in order.
    #[arg(long = "fallback-type", value_name = "TYPE")]
    fallback_types: Vec<String>,

    /// Image (AMI) id; default: the newest Amazon Linux 2023 for the type's architecture.
    #[arg(long, value_name = "AMI")]
    image: Option<String>,

    /// Subnet; default: the default VPC's default subnet.
    #[arg(long, value_name = "SUBNET")]
    subnet: Option<String>,

    /// Subnet (same VPC) to try when EC2 has no capacity in the previous ones. Repeatable.
    #[arg(long = "fallback-subnet", value_name = "SUBNET")]
    fallback_subnets: Vec<String>,

    /// The OpenSSH public key to log in with (ed25519 or RSA); default ~/.ssh/id_ed25519.pub.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,

    /// Allow SSH (TCP 22) from this network only, e.g. your address with /32. Without it only
    /// the cluster's own members can reach each other.
    #[arg(long, value_name = "CIDR")]
    ssh_cidr: Option<String>,

    /// Make no cluster placement group (needed for types that cannot be in one, e.g. t3).
    #[arg(long)]
    no_placement_group: bool,

    /// Where to write the hostfile; default NAME.hosts.
    #[arg(long, value_name = "PATH")]
    hostfile: Option<PathBuf>,

    /// Give up waiting for the instances after this many seconds.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    timeout: u64,

    /// Also wait until each instance's SSH port (22 or --ssh-port) answers.
    #[arg(long)]
    ssh_check: bool,

    /// Print what would be done; change nothing.
    #[arg(long)]
    dry_run: bool,

    #[command(flatten)]
    output: OutputArgs,

    #[command(flatten)]
    aws: AwsArgs,
}

fn default_key_file() -> Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::Usage("HOME is not set: pass --key-file".into()))?;
    Ok(PathBuf::from(home).join(".ssh/id_ed25519.pub"))
}

pub fn run(args: &UpArgs) -> Result<()> {
    let options = args.output.options()?;
    let ssh_cidr = args.ssh_cidr.as_deref().map(parse_cidr).transpose()?;
    let key_file = match &args.key_file {
        Some(path) => path.clone(),
        None => default_key_file()?,
    };
    let path =
        args.hostfile.clone().unwrap_or_else(|| PathBuf::from(format!("{}.hosts", args.cluster)));
    let ssh_port = args.ssh_check.then(|| args.output.ssh_port.unwrap_or(22));
    let spec = UpSpec {
        count: args.count,
        instance_type: args.instance_type.clone(),
        fallback_types: args.fallback_types.clone(),
        image: args.image.clone(),
        subnet: args.subnet.clone(),
        fallback_subnets: args.fallback_subnets.clone(),
        key_file,
        ssh_cidr,
        placement_group: !args.no_placement_group,
        wait: WaitSpec::new(
            args.count,
            Duration::from_secs(args.timeout),
            args.output.address,
            ssh_port,
        ),
    };
    let client = args.aws.connect()?.client;
    let say = |line: &str| args.aws.say(line);
    let ctx = Ctx { client: &client, cluster: &args.cluster, dry_run: args.dry_run, say: &say };
    let instances = up::up(&ctx, &spec)?;
    if args.dry_run {
        say(&format!("would write the hostfile {}", path.display()));
        return Ok(());
    }
    let entries = rmpi_ec2::hostfile_entries(&client, &instances, &options)?;
    let text = hostfile::render(&entries, options.format);
    std::fs::write(&path, &text)
        .map_err(|source| Error::Io { path: path.clone(), source })
        .map_err(|e| e.during("writing the hostfile"))?;
    let slots: u64 = entries.iter().map(|e| u64::from(e.slots)).sum();
    say(&format!("wrote {} ({} hosts, {slots} slots)", path.display(), entries.len()));
    super::print(&format!(
        "rmpirun -n {slots} --hostfile {} ./your-program\nrmpi-ec2 down --cluster {}\n",
        shell_word(&path.display().to_string()),
        args.cluster
    ))
}

/// `text` as one shell word: unchanged when it is plain, else single-quoted.
fn shell_word(text: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_word;

    #[test]
    fn shell_words() {
        assert_eq!(shell_word("demo.hosts"), "demo.hosts");
        assert_eq!(shell_word("/tmp/a b/demo.hosts"), "'/tmp/a b/demo.hosts'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
