//! The subcommands' arguments and what they run; options shared by several live here.

pub mod down;
pub mod hostfile;
pub mod list;
pub mod up;

use std::io::Write;

use rmpi_ec2::connect::{self, Connection};
use rmpi_ec2::env::Env;
use rmpi_ec2::hostfile::{AddressKind, Format, Options, Slots};
use rmpi_ec2::Result;

/// Where the EC2 API is and who calls it.
#[derive(clap::Args)]
pub struct AwsArgs {
    /// AWS region (else AWS_REGION, AWS_DEFAULT_REGION, the profile, the instance metadata).
    #[arg(long)]
    pub region: Option<String>,

    /// Profile of the shared AWS config files (else AWS_PROFILE, else `default`).
    #[arg(long)]
    pub profile: Option<String>,

    /// EC2 endpoint URL (else AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL, the region's endpoint).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// Print no progress or summary on standard error.
    #[arg(long, short)]
    pub quiet: bool,
}

impl AwsArgs {
    /// Resolves the client from the flags and the process environment, and says where from.
    pub fn connect(&self) -> Result<Connection> {
        let connection = connect::connect(
            self.region.as_deref(),
            self.profile.as_deref(),
            self.endpoint_url.as_deref(),
            &Env::from_process(),
        )?;
        self.say(&connection.description);
        Ok(connection)
    }

    /// Writes a progress line to standard error (unless --quiet).
    pub fn say(&self, line: &str) {
        if !self.quiet {
            eprintln!("rmpi-ec2: {line}");
        }
    }
}

/// What the hostfile looks like.
#[derive(clap::Args)]
pub struct OutputArgs {
    /// Slots per host: `vcpus` (the instance type's vCPU count), `cores` (physical cores) or a
    /// number.
    #[arg(long, default_value = "vcpus", value_name = "vcpus|cores|N")]
    pub slots: Slots,

    /// Which address of each instance to write.
    #[arg(long, value_enum, default_value = "private-ip")]
    pub address: AddressKind,

    /// Output format.
    #[arg(long, value_enum, default_value = "rmpi")]
    pub format: Format,

    /// SSH user to write on each line (`user@host`; rmpi format only).
    #[arg(long)]
    pub user: Option<String>,

    /// SSH port: written on each line (rmpi format only) and probed by --ssh-check.
    #[arg(long, value_name = "PORT")]
    pub ssh_port: Option<u16>,
}

impl OutputArgs {
    /// The hostfile options, checked.
    pub fn options(&self) -> Result<Options> {
        let options = Options {
            format: self.format,
            address: self.address,
            slots: self.slots,
            user: self.user.clone(),
            port: self.ssh_port,
        };
        options.validate()?;
        Ok(options)
    }
}

/// Writes `text` to standard output.
pub fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| rmpi_ec2::Error::Usage(format!("writing to standard output: {e}")))
}
