//! From command-line overrides to a ready [`Client`]: the region, credential and endpoint
//! chains, the same for every command.

use crate::env::Env;
use crate::error::Result;
use crate::imds::Imds;
use crate::query::{self, Client};
use crate::{credentials, region};

/// A client, and one line saying where its region, credentials and endpoint came from.
#[derive(Debug)]
pub struct Connection {
    /// The EC2 client.
    pub client: Client,
    /// `region us-east-1 (from AWS_REGION), credentials from environment, endpoint ...`.
    pub description: String,
}

/// Resolves the region, credentials and endpoint (`--region`, `--profile`, `--endpoint-url`
/// first, then `env`, the shared files and the instance metadata service).
pub fn connect(
    region_flag: Option<&str>,
    profile: Option<&str>,
    endpoint_flag: Option<&str>,
    env: &Env,
) -> Result<Connection> {
    let imds = Imds::from_env(env);
    let region = region::resolve(region_flag, profile, env, imds.as_ref())?;
    let creds = credentials::resolve(profile, env, imds.as_ref())?;
    let endpoint = query::endpoint_url(endpoint_flag, env, &region.region);
    let client = Client::new(&endpoint, &region.region, creds.credentials)?;
    let description = format!(
        "region {} (from {}), credentials from {}, endpoint {}",
        region.region,
        region.source,
        creds.source,
        client.endpoint()
    );
    Ok(Connection { client, description })
}
