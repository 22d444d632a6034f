//! What this crate knows about an instance and an instance type.

use crate::time::Timestamp;

/// One EC2 instance, as DescribeInstances reports it. Empty strings from EC2 become `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    /// `i-0123456789abcdef0`.
    pub id: String,
    /// `m5.large`.
    pub instance_type: String,
    /// `pending`, `running`, `stopped`...
    pub state: String,
    /// Primary private IPv4 address.
    pub private_ip: Option<String>,
    /// Public IPv4 address.
    pub public_ip: Option<String>,
    /// Private DNS name.
    pub private_dns: Option<String>,
    /// Public DNS name.
    pub public_dns: Option<String>,
    /// Primary IPv6 address.
    pub ipv6: Option<String>,
    /// When the instance was launched (`None` if EC2 gave none or an unparsable one).
    pub launch_time: Option<Timestamp>,
    /// Tags, in the order EC2 listed them.
    pub tags: Vec<(String, String)>,
}

impl Instance {
    /// The value of tag `key`, if the instance has it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// The processor counts of an instance type (DescribeInstanceTypes `vCpuInfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuInfo {
    /// Default number of vCPUs.
    pub vcpus: u32,
    /// Default number of physical cores (EC2 omits it for some types; then it equals `vcpus`).
    pub cores: u32,
}
