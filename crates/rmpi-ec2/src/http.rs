//! The blocking HTTP client shared by the EC2 and metadata-service calls (ureq, rustls).

use std::time::Duration;

/// Largest response body read (a DescribeInstances page of 1000 instances is a few MB).
const BODY_LIMIT: u64 = 64 * 1024 * 1024;

/// A status code and body text, for any HTTP status.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Response body.
    pub body: String,
}

/// Builds an agent that returns every HTTP status as a reply (not an error), with the given
/// connect and overall timeouts. `use_env_proxy` keeps ureq's `HTTPS_PROXY`/`ALL_PROXY` support;
/// the metadata service is always contacted directly.
pub fn agent(connect: Duration, total: Duration, use_env_proxy: bool) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(connect))
        .timeout_global(Some(total))
        .user_agent(concat!("rmpi-ec2/", env!("CARGO_PKG_VERSION")));
    if !use_env_proxy {
        config = config.proxy(None);
    }
    config.build().into()
}

/// Reads a response into a [`Reply`]; errors are returned as text (they never contain secrets:
/// request bodies and headers are not part of ureq's error messages).
pub fn reply(
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Reply, String> {
    let mut response = response.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(BODY_LIMIT)
        .read_to_string()
        .map_err(|e| format!("reading the response body: {e}"))?;
    Ok(Reply { status, body })
}
