//! The crate's error type.
//!
//! Every variant carries enough context (file and line, endpoint, EC2 action, instance ids) to be
//! shown to a user as a single line. No variant ever holds a secret key or session token.

use std::path::PathBuf;

/// Everything that can go wrong while bringing a cluster up or down, discovering instances and
/// writing a hostfile.
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

    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
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

    /// A cluster name is not usable.
    #[error("invalid cluster name `{name}`: {reason}")]
    InvalidCluster {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The SSH public key file is missing or not an OpenSSH public key EC2 can import.
    #[error("SSH public key {}: {reason}", path.display())]
    SshKey {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// One step on one EC2 resource failed (`creating security group rmpi-demo in vpc-1: ...`).
    #[error("{step}: {source}")]
    Step {
        /// What was being done, naming the resource.
        step: String,
        /// The cause.
        source: Box<Error>,
    },

    /// A resource is in the way: it exists but was not made by `rmpi-ec2 up` for this cluster,
    /// or is not in the state `up` needs.
    #[error("{resource}: {reason}")]
    Conflict {
        /// The resource (`security group rmpi-demo (sg-0123)`).
        resource: String,
        /// Why it cannot be used, and what to do.
        reason: String,
    },

    /// No launch attempt gave all the instances asked for; whatever was launched was terminated.
    #[error("could not launch {count} instances for cluster {cluster}: {attempts}{note}")]
    Launch {
        /// The cluster.
        cluster: String,
        /// Instances wanted.
        count: usize,
        /// What each attempt (instance type, subnet) ended with.
        attempts: String,
        /// What is left behind and how to remove it (may be empty).
        note: String,
    },

    /// Waiting for resources to go away gave up at its deadline.
    #[error("timed out after {waited_secs}s waiting for {what}")]
    Timeout {
        /// Seconds waited.
        waited_secs: u64,
        /// What was still not done.
        what: String,
    },
}

impl Error {
    /// Wraps `self` with the step (naming the resource) that failed.
    pub fn during(self, step: impl Into<String>) -> Self {
        Self::Step { step: step.into(), source: Box::new(self) }
    }

    /// The EC2 error code, if this is (or wraps) an EC2 error answer.
    pub fn ec2_code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } | Self::AccessDenied { code, .. } => Some(code),
            Self::Step { source, .. } => source.ec2_code(),
            _ => None,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
