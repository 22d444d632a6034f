//! Bring an rmpi cluster up on EC2, write its hostfile, take it down; or build a hostfile from
//! running EC2 instances selected by tags.
//!
//! ```text
//! rmpi-ec2 up --cluster demo --count 4 --type c7i.4xlarge --ssh-cidr 203.0.113.7/32
//! rmpirun -n 64 --hostfile demo.hosts ./app
//! rmpi-ec2 down --cluster demo
//!
//! rmpi-ec2 hostfile --tag Cluster=demo > hosts
//! ```
//!
//! The crate speaks the EC2 Query API (version 2016-11-15) directly: requests are form POSTs
//! signed with the official `aws-sigv4` crate and sent with a small blocking HTTP client (`ureq`,
//! rustls); responses are parsed with `quick-xml`'s serde support. It does not depend on the AWS
//! SDK for Rust (`aws-sdk-ec2` is far too costly to build for a few API calls).
//!
//! Modules:
//! - [`env`](mod@env): a snapshot of environment variables, so the chains below can be given a controlled
//!   environment;
//! - [`profile`]: the shared `~/.aws/config` and `~/.aws/credentials` files;
//! - [`imds`]: the instance metadata service (IMDSv2) of an EC2 head node;
//! - [`credentials`], [`region`]: the credential and region chains (environment, profile files,
//!   instance role);
//! - [`signing`]: SigV4 request signing;
//! - [`query`]: the EC2 client (retries with backoff, error mapping, pagination);
//! - [`xml`]: the response shapes;
//! - [`model`], [`time`]: instances, instance types, timestamps;
//! - [`select`]: tag selectors, filters, the stable host order;
//! - [`hostfile`](mod@hostfile): addresses, slot counts and output formats;
//! - [`wait`]: waiting for a cluster to come up;
//! - [`connect`](mod@connect): from command-line overrides to a client;
//! - [`cluster`]: `up`, `down` and `list` (key pair, security group, placement group, launch).

pub mod cluster;
pub mod connect;
pub mod credentials;
pub mod env;
pub mod error;
pub mod hostfile;
mod http;
pub mod imds;
pub mod model;
pub mod profile;
pub mod query;
pub mod region;
pub mod select;
pub mod signing;
pub mod time;
pub mod wait;
pub mod xml;

pub use error::{Error, Result};

use model::Instance;
use query::Client;
use select::TagSelector;

/// The running instances that carry every tag in `selectors`, in hostfile order (by `order_tag`,
/// launch time, instance id). Fails with [`Error::NoInstances`] when there are none.
pub fn running_instances(
    client: &Client,
    selectors: &[TagSelector],
    order_tag: &str,
    page_size: Option<u32>,
) -> Result<Vec<Instance>> {
    let states = ["running"];
    let mut instances: Vec<Instance> = client
        .describe_instances(&select::filters(selectors, &states), page_size)?
        .into_iter()
        .filter(|i| select::matches(i, selectors, &states))
        .collect();
    if instances.is_empty() {
        return Err(Error::NoInstances {
            region: client.region().to_string(),
            selection: select::describe(selectors),
        });
    }
    select::sort(&mut instances, order_tag);
    select::dedup(&mut instances);
    Ok(instances)
}

/// The hostfile entries for `instances` (already ordered): describes their instance types when
/// the slot policy needs it (one DescribeInstanceTypes call per distinct type).
pub fn hostfile_entries(
    client: &Client,
    instances: &[Instance],
    options: &hostfile::Options,
) -> Result<Vec<hostfile::Entry>> {
    options.validate()?;
    let cpus = if options.slots.needs_instance_types() {
        let mut types: Vec<String> = instances.iter().map(|i| i.instance_type.clone()).collect();
        types.sort();
        types.dedup();
        client.describe_instance_types(&types)?
    } else {
        Default::default()
    };
    hostfile::entries(instances, &cpus, options)
}

/// The hostfile text for `instances` (already ordered), as [`hostfile_entries`] renders it.
pub fn hostfile(
    client: &Client,
    instances: &[Instance],
    options: &hostfile::Options,
) -> Result<String> {
    let entries = hostfile_entries(client, instances, options)?;
    Ok(hostfile::render(&entries, options.format))
}
