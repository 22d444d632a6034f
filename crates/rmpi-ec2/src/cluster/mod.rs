//! Clusters that `rmpi-ec2 up` makes and `rmpi-ec2 down` removes.
//!
//! A cluster is a name. Everything `up` makes for it carries two tags, `Cluster=NAME` and
//! `CreatedBy=rmpi-ec2`, and `down` only ever deletes what carries both. The key pair, security
//! group and placement group are all called `rmpi-NAME`.
//!
//! Modules, one per resource or command:
//! - [`sshkey`]: the user's OpenSSH public key and the fingerprints EC2 gives it;
//! - [`keypair`], [`security_group`], [`placement`]: find, create, check, delete;
//! - [`network`]: which VPC and subnets; [`image`]: the default image;
//! - [`launch`]: all-or-nothing RunInstances with fallbacks and roll-back;
//! - [`up`], [`down`], [`list`]: the three commands;
//! - [`responses`]: the XML shapes of the calls above; [`settle`]: retrying deletions while
//!   EC2 still sees dependencies.

pub mod down;
pub mod image;
pub mod keypair;
pub mod launch;
pub mod list;
pub mod network;
pub mod placement;
pub mod responses;
pub mod security_group;
pub mod settle;
pub mod sshkey;
pub mod up;

use crate::error::{Error, Result};
use crate::query::{Client, Filter};
use crate::select::TagSelector;

/// The tag holding the cluster name (the one `rmpi-ec2 hostfile --tag Cluster=NAME` selects by).
pub const CLUSTER_TAG: &str = "Cluster";
/// The tag saying `rmpi-ec2 up` made a resource.
pub const CREATED_BY_TAG: &str = "CreatedBy";
/// The value of [`CREATED_BY_TAG`].
pub const CREATED_BY: &str = "rmpi-ec2";

/// A validated cluster name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cluster {
    name: String,
}

impl std::str::FromStr for Cluster {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        let invalid =
            |reason: &str| Error::InvalidCluster { name: name.into(), reason: reason.into() };
        if name.is_empty() || name.len() > 64 {
            return Err(invalid("must be 1 to 64 characters"));
        }
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(invalid("only letters, digits, `-` and `_` are allowed"));
        }
        if !name.as_bytes()[0].is_ascii_alphanumeric() {
            return Err(invalid("must start with a letter or digit"));
        }
        Ok(Self { name: name.to_string() })
    }
}

impl std::fmt::Display for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Cluster {
    /// The cluster name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name of the key pair, security group and placement group `up` makes: `rmpi-NAME`.
    pub fn resource_name(&self) -> String {
        format!("rmpi-{}", self.name)
    }

    /// The tags of everything `up` makes.
    pub fn tags(&self) -> [(String, String); 2] {
        [
            (CLUSTER_TAG.to_string(), self.name.clone()),
            (CREATED_BY_TAG.to_string(), CREATED_BY.to_string()),
        ]
    }

    /// Whether `tags` say that `up` made the resource for this cluster.
    pub fn owns(&self, tags: &[(String, String)]) -> bool {
        self.tags().iter().all(|wanted| tags.contains(wanted))
    }

    /// The tag selector of the cluster's instances (as `hostfile --tag Cluster=NAME`).
    pub fn selectors(&self) -> Vec<TagSelector> {
        vec![TagSelector { key: CLUSTER_TAG.into(), value: Some(self.name.clone()) }]
    }

    /// Describe filters matching what `up` made for this cluster.
    pub fn owned_filters(&self) -> Vec<Filter> {
        self.tags()
            .into_iter()
            .map(|(k, v)| Filter { name: format!("tag:{k}"), values: vec![v] })
            .collect()
    }

    /// `TagSpecification.N` parameters tagging a new resource of `resource_type` (`instance`,
    /// `security-group`...) with the cluster's tags.
    pub fn tag_specification(&self, n: usize, resource_type: &str) -> Vec<(String, String)> {
        let prefix = format!("TagSpecification.{n}");
        let mut params = vec![(format!("{prefix}.ResourceType"), resource_type.to_string())];
        for (i, (k, v)) in self.tags().into_iter().enumerate() {
            params.push((format!("{prefix}.Tag.{}.Key", i + 1), k));
            params.push((format!("{prefix}.Tag.{}.Value", i + 1), v));
        }
        params
    }
}

/// What a step needs: the client, the cluster, whether this is a dry run, and where progress
/// lines go.
pub struct Ctx<'a> {
    /// The EC2 client.
    pub client: &'a Client,
    /// The cluster.
    pub cluster: &'a Cluster,
    /// Only describe: print what would be done.
    pub dry_run: bool,
    /// Receives one line per thing done (or that would be done).
    pub say: &'a dyn Fn(&str),
}

impl Ctx<'_> {
    /// In a dry run, says `would WHAT` and returns true: the caller then skips the change.
    pub fn skip(&self, what: &str) -> bool {
        if self.dry_run {
            (self.say)(&format!("would {what}"));
        }
        self.dry_run
    }
}

/// Calls `action` and parses the answer with `parse`; an unparsable answer is a
/// [`Error::BadResponse`] naming the action and endpoint.
pub(crate) fn ask<T>(
    client: &Client,
    action: &str,
    params: &[(String, String)],
    parse: fn(&str) -> std::result::Result<T, String>,
) -> Result<T> {
    let body = client.call(action, params)?;
    parse(&body).map_err(|reason| Error::BadResponse {
        action: action.to_string(),
        endpoint: client.endpoint().to_string(),
        reason,
    })
}

/// `(name, value)` pairs from `&str`s.
pub(crate) fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert_eq!("demo-1_a".parse::<Cluster>().unwrap().resource_name(), "rmpi-demo-1_a");
        for bad in ["", "-x", "a b", "a/b", &"x".repeat(65)] {
            assert!(matches!(bad.parse::<Cluster>(), Err(Error::InvalidCluster { .. })), "{bad}");
        }
    }

    #[test]
    fn tags_and_ownership() {
        let c: Cluster = "demo".parse().unwrap();
        let spec = c.tag_specification(2, "key-pair");
        assert_eq!(spec[0], ("TagSpecification.2.ResourceType".into(), "key-pair".into()));
        assert_eq!(spec[1], ("TagSpecification.2.Tag.1.Key".into(), "Cluster".into()));
        assert_eq!(spec[4], ("TagSpecification.2.Tag.2.Value".into(), "rmpi-ec2".into()));
        let mut tags = c.tags().to_vec();
        assert!(c.owns(&tags));
        tags.pop();
        assert!(!c.owns(&tags), "the Cluster tag alone is not ownership");
        let other: Cluster = "other".parse().unwrap();
        assert!(!other.owns(&c.tags()));
    }
}
