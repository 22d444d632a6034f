//! The crate's error type.
//!
//! Every variant carries enough context (file and line, endpoint, EC2 action, instance ids) to be
//! shown to a user as a single line. No variant ever holds a secret key or session token.

use std::path::PathBuf;

/// Everything that can go wrong while discovering instances and writing a hostfile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No source in the credential chain produced credentials.
    #[error(
        "no AWS credentials found; tried: {tried}. Set AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY, configure a profile (aws configure), or run on an EC2 instance \
         with an instance role"
    )]
    NoCredentials {
        /// What was tried, in order, and why each source gave nothing.
        tried: String,
    },

    /// No source in the region chain produced a region.
    #[error(
        "no AWS region; tried: {tried}. Pass --region, set AWS_REGION, or set `region` in the \
         profile"
    )]
    NoRegion {
        /// What was tried, in order.
        tried: String,
    },

    /// A profile was asked for by name but is in neither shared file.
    #[error("AWS profile `{profile}` not found in {config} or {credentials}")]
    ProfileNotFound {
        /// Profile name.
        profile: String,
        /// The config file that was read.
        config: PathBuf,
        /// The credentials file that was read.
        credentials: PathBuf,
    },

    /// A profile exists but holds no usable static keys.
    #[error("AWS profile `{profile}`: {reason}")]
    ProfileUnusable {
        /// Profile name.
        profile: String,
        /// Why it cannot be used.
        reason: String,
    },

    /// A line of a shared config or credentials file could not be parsed.
    #[error("{}:{line}: {reason}", path.display())]
    ProfileSyntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },

    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },

    /// The instance metadata service (IMDSv2) failed.
    #[error("instance metadata service {endpoint}: {reason}")]
    Imds {
        /// Base URL of the metadata service.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },

    /// EC2 refused the call for lack of permission.
    #[error(
        "access denied: EC2 refused {action} ({code}); the caller's IAM policy must allow \
         `ec2:{action}`{}",
        if message.is_empty() { String::new() } else { format!(": {message}") }
    )]
    AccessDenied {
        /// The EC2 API action (the IAM action is `ec2:<action>`).
        action: String,
        /// The EC2 error code (`UnauthorizedOperation`, `AccessDenied`...).
        code: String,
        /// The message EC2 gave.
        message: String,
    },

    /// EC2 kept throttling the call until the retry budget ran out.
    #[error("EC2 {action} still throttled after {attempts} attempts ({code}); try again later")]
    Throttled {
        /// The EC2 API action.
        action: String,
        /// How many requests were sent.
        attempts: u32,
        /// The last error code (`RequestLimitExceeded`, `Throttling`, HTTP 503...).
        code: String,
    },

    /// EC2 answered with any other error.
    #[error("EC2 {action} failed with HTTP {status}: {code}: {message}{hint}")]
    Api {
        /// The EC2 API action.
        action: String,
        /// HTTP status code.
        status: u16,
        /// EC2 error code.
        code: String,
        /// EC2 error message.
        message: String,
        /// A hint for common codes (empty otherwise).
        hint: String,
    },

    /// The endpoint could not be reached (after retries).
    #[error("EC2 {action}: cannot reach {endpoint}: {reason}")]
    Transport {
        /// The EC2 API action.
        action: String,
        /// The endpoint URL.
        endpoint: String,
        /// The cause.
        reason: String,
    },

    /// The endpoint answered something that is not a valid EC2 response.
    #[error("EC2 {action}: unexpected response from {endpoint}: {reason}")]
    BadResponse {
        /// The EC2 API action.
        action: String,
        /// The endpoint URL.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The request could not be signed.
    #[error("cannot sign the request to {endpoint}: {reason}")]
    Signing {
        /// The endpoint URL.
        endpoint: String,
        /// The cause.
        reason: String,
    },

    /// An endpoint URL is not usable.
    #[error("invalid endpoint URL `{url}`: {reason}")]
    InvalidEndpoint {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A `--tag` argument is malformed.
    #[error("invalid tag selector `{selector}`: {reason}")]
    InvalidTag {
        /// The selector as given.
        selector: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A command-line option combination is not allowed.
    #[error("{0}")]
    Usage(String),

    /// No instance matched the selection.
    #[error("no running EC2 instances in {region} match {selection}")]
    NoInstances {
        /// The region searched.
        region: String,
        /// The tag selection, as text.
        selection: String,
    },

    /// DescribeInstanceTypes did not describe an instance type in use.
    #[error("DescribeInstanceTypes returned no vCPU information for instance type `{0}`")]
    UnknownInstanceType(String),

    /// A selected instance lacks the address that was asked for.
    #[error(
        "instances without a {kind}: {instances} (new instances get their address after a \
         while: use --wait; or choose another --address)"
    )]
    MissingAddress {
        /// Which address (`private IP`, `public DNS name`...).
        kind: String,
        /// The instance ids.
        instances: String,
    },

    /// `--wait` gave up at its deadline.
    #[error("timed out after {waited_secs}s waiting for {wanted} instances: {missing}")]
    WaitTimeout {
        /// Seconds waited.
        waited_secs: u64,
        /// How many instances were wanted.
        wanted: usize,
        /// What is still missing, per instance.
        missing: String,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
