//! The EC2 instance metadata service, version 2 (token-protected).
//!
//! Used on an EC2 head node for the instance role's credentials and for the region. The endpoint
//! is `http://169.254.169.254` unless `AWS_EC2_METADATA_SERVICE_ENDPOINT` names another one (or
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6` selects `http://[fd00:ec2::254]`);
//! `AWS_EC2_METADATA_DISABLED=true` turns it off.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use serde::Deserialize;

use crate::env::Env;
use crate::error::{Error, Result};
use crate::http;

/// Lifetime asked for the session token, in seconds.
const TOKEN_TTL_SECS: &str = "21600";

/// A client for one metadata service endpoint.
pub struct Imds {
    endpoint: String,
    agent: ureq::Agent,
}

/// Temporary credentials as served under `iam/security-credentials/ROLE`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleCredentials {
    code: Option<String>,
    access_key_id: String,
    secret_access_key: String,
    token: Option<String>,
    expiration: Option<String>,
}

impl Imds {
    /// The metadata service configured by `env`, or `None` when it is disabled.
    pub fn from_env(env: &Env) -> Option<Self> {
        if env.get("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return None;
        }
        let endpoint = match env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") {
            Some(url) => url.trim_end_matches('/').to_string(),
            None if env
                .get("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE")
                .is_some_and(|m| m.eq_ignore_ascii_case("ipv6")) =>
            {
                "http://[fd00:ec2::254]".to_string()
            }
            None => "http://169.254.169.254".to_string(),
        };
        Some(Self::new(endpoint))
    }

    /// A client for the service at `endpoint` (e.g. `http://169.254.169.254`).
    pub fn new(endpoint: String) -> Self {
        let agent = http::agent(Duration::from_secs(1), Duration::from_secs(3), false);
        Self { endpoint, agent }
    }

    /// The base URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn error(&self, reason: impl Into<String>) -> Error {
        Error::Imds { endpoint: self.endpoint.clone(), reason: reason.into() }
    }

    /// Obtains a session token (`PUT /latest/api/token`).
    fn token(&self) -> Result<String> {
        let url = format!("{}/latest/api/token", self.endpoint);
        let response = self
            .agent
            .put(&url)
            .header("x-aws-ec2-metadata-token-ttl-seconds", TOKEN_TTL_SECS)
            .send_empty();
        let reply =
            http::reply(response).map_err(|e| self.error(format!("getting a token: {e}")))?;
        if reply.status != 200 {
            return Err(self.error(format!("getting a token: HTTP {}", reply.status)));
        }
        let token = reply.body.trim().to_string();
        if token.is_empty() {
            return Err(self.error("getting a token: empty token"));
        }
        Ok(token)
    }

    /// Fetches `path` (under `/latest/`) with a fresh token; the body is trimmed.
    pub fn get(&self, path: &str) -> Result<String> {
        let token = self.token()?;
        self.get_with(&token, path)
    }

    fn get_with(&self, token: &str, path: &str) -> Result<String> {
        let url = format!("{}/latest/{path}", self.endpoint);
        let response = self.agent.get(&url).header("x-aws-ec2-metadata-token", token).call();
        let reply = http::reply(response).map_err(|e| self.error(format!("{path}: {e}")))?;
        match reply.status {
            200 => Ok(reply.body.trim().to_string()),
            404 => Err(self.error(format!("{path}: not found (HTTP 404)"))),
            status => Err(self.error(format!("{path}: HTTP {status}"))),
        }
    }

    /// The instance's region (`meta-data/placement/region`).
    pub fn region(&self) -> Result<String> {
        let region = self.get("meta-data/placement/region")?;
        if region.is_empty() {
            return Err(self.error("meta-data/placement/region is empty"));
        }
        Ok(region)
    }

    /// The instance role's name and its current temporary credentials.
    pub fn role_credentials(&self) -> Result<(String, Credentials)> {
        let token = self.token()?;
        let roles =
            self.get_with(&token, "meta-data/iam/security-credentials/").map_err(|e| match e {
                Error::Imds { reason, .. } if reason.contains("404") => {
                    self.error("no IAM role is attached to this instance")
                }
                other => other,
            })?;
        let Some(role) = roles.lines().map(str::trim).find(|l| !l.is_empty()) else {
            return Err(self.error("no IAM role is attached to this instance"));
        };
        let body = self.get_with(&token, &format!("meta-data/iam/security-credentials/{role}"))?;
        // Never include `body` in an error: it holds the secret key.
        let parsed: RoleCredentials = serde_json::from_str(&body).map_err(|e| {
            self.error(format!(
                "credentials of role `{role}` are not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        if let Some(code) = parsed.code.as_deref().filter(|c| *c != "Success") {
            return Err(self.error(format!("credentials of role `{role}`: status {code}")));
        }
        let expiry =
            parsed.expiration.as_deref().and_then(crate::time::Timestamp::parse).map(|t| {
                SystemTime::UNIX_EPOCH + Duration::from_secs(t.secs.max(0).unsigned_abs())
            });
        let creds = Credentials::new(
            parsed.access_key_id,
            parsed.secret_access_key,
            parsed.token,
            expiry,
            "imds",
        );
        Ok((role.to_string(), creds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_selection() {
        let env = Env::from_pairs([("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9/")]);
        assert_eq!(Imds::from_env(&env).unwrap().endpoint(), "http://127.0.0.1:9");
        let env = Env::from_pairs([("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv6")]);
        assert_eq!(Imds::from_env(&env).unwrap().endpoint(), "http://[fd00:ec2::254]");
        assert_eq!(Imds::from_env(&Env::default()).unwrap().endpoint(), "http://169.254.169.254");
        let env = Env::from_pairs([("AWS_EC2_METADATA_DISABLED", "TRUE")]);
        assert!(Imds::from_env(&env).is_none());
    }
}
