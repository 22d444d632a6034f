//! Build an rmpi hostfile from running EC2 instances selected by tags.
//!
//! ```text
//! rmpi-ec2 hostfile --tag Cluster=demo > hosts
//! rmpirun -n 32 --hostfile hosts ./app
//! ```
//!
//! The crate speaks the EC2 Query API (version 2016-11-15) directly: requests are form POSTs
//! signed with the official `aws-sigv4` crate and sent with a small blocking HTTP client (`ureq`,
//! rustls); responses are parsed with `quick-xml`'s serde support. It does not depend on the AWS
//! SDK for Rust (`aws-sdk-ec2` is far too costly to build for two API calls).
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
//! - [`wait`]: waiting for a cluster to come up.

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

/// The hostfile text for `instances` (already ordered): describes their instance types when the
/// slot policy needs it (one DescribeInstanceTypes call per distinct type), then renders.
pub fn hostfile(
    client: &Client,
    instances: &[Instance],
    options: &hostfile::Options,
) -> Result<String> {
    options.validate()?;
    let cpus = if options.slots.needs_instance_types() {
        let mut types: Vec<String> = instances.iter().map(|i| i.instance_type.clone()).collect();
        types.sort();
        types.dedup();
        client.describe_instance_types(&types)?
    } else {
        Default::default()
    };
    let entries = hostfile::entries(instances, &cpus, options)?;
    Ok(hostfile::render(&entries, options.format))
}
