//! The XML shapes of the EC2 Query API responses (version 2016-11-15) and their parsing with
//! `quick-xml`'s serde support. Lists are `<fooSet><item>...</item></fooSet>`.

use serde::Deserialize;

use crate::model::{CpuInfo, Instance};
use crate::time::Timestamp;

/// `<xSet><item/>...</xSet>`: an absent or empty set is an empty list.
#[derive(Deserialize)]
pub(crate) struct Items<T> {
    #[serde(default = "Vec::new", rename = "item")]
    pub(crate) items: Vec<T>,
}

impl<T> Default for Items<T> {
    fn default() -> Self {
        Self { items: Vec::new() }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeInstancesResponse {
    #[serde(default)]
    reservation_set: Items<Reservation>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reservation {
    #[serde(default)]
    instances_set: Items<XmlInstance>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct XmlInstance {
    instance_id: String,
    instance_type: Option<String>,
    instance_state: Option<XmlState>,
    private_ip_address: Option<String>,
    ip_address: Option<String>,
    private_dns_name: Option<String>,
    dns_name: Option<String>,
    ipv6_address: Option<String>,
    launch_time: Option<String>,
    #[serde(default)]
    tag_set: Items<XmlTag>,
}

#[derive(Deserialize)]
struct XmlState {
    name: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct XmlTag {
    key: String,
    value: Option<String>,
}

/// `tagSet` items as `(key, value)` pairs, in EC2's order.
pub(crate) fn tags(set: Items<XmlTag>) -> Vec<(String, String)> {
    set.items.into_iter().map(|t| (t.key, t.value.unwrap_or_default())).collect()
}

impl XmlInstance {
    /// The crate's view of the instance.
    pub(crate) fn into_instance(self) -> Instance {
        Instance {
            id: self.instance_id,
            instance_type: non_empty(self.instance_type).unwrap_or_default(),
            state: self.instance_state.and_then(|s| non_empty(s.name)).unwrap_or_default(),
            private_ip: non_empty(self.private_ip_address),
            public_ip: non_empty(self.ip_address),
            private_dns: non_empty(self.private_dns_name),
            public_dns: non_empty(self.dns_name),
            ipv6: non_empty(self.ipv6_address),
            launch_time: self.launch_time.as_deref().and_then(Timestamp::parse),
            tags: tags(self.tag_set),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeInstanceTypesResponse {
    #[serde(default)]
    instance_type_set: Items<XmlInstanceType>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct XmlInstanceType {
    instance_type: String,
    v_cpu_info: Option<XmlVCpuInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct XmlVCpuInfo {
    default_v_cpus: u32,
    default_cores: Option<u32>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    #[serde(rename = "Errors")]
    errors: ErrorList,
}

#[derive(Deserialize)]
struct ErrorList {
    #[serde(default, rename = "Error")]
    error: Vec<XmlError>,
}

#[derive(Deserialize)]
struct XmlError {
    #[serde(rename = "Code")]
    code: String,
    #[serde(rename = "Message")]
    message: Option<String>,
}

/// One page of DescribeInstances: the instances and the token of the next page.
#[derive(Debug)]
pub struct InstancesPage {
    /// Instances of every reservation on the page.
    pub instances: Vec<Instance>,
    /// `None` on the last page.
    pub next_token: Option<String>,
}

pub(crate) fn non_empty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// Parses a DescribeInstances response body.
pub fn instances_page(body: &str) -> Result<InstancesPage, String> {
    let parsed: DescribeInstancesResponse =
        quick_xml::de::from_str(body).map_err(|e| format!("DescribeInstancesResponse: {e}"))?;
    let instances = parsed
        .reservation_set
        .items
        .into_iter()
        .flat_map(|r| r.instances_set.items)
        .map(XmlInstance::into_instance)
        .collect();
    Ok(InstancesPage { instances, next_token: non_empty(parsed.next_token) })
}

/// Parses a DescribeInstanceTypes response body into `(type, cpu info)` pairs.
pub fn instance_types(body: &str) -> Result<Vec<(String, CpuInfo)>, String> {
    let parsed: DescribeInstanceTypesResponse =
        quick_xml::de::from_str(body).map_err(|e| format!("DescribeInstanceTypesResponse: {e}"))?;
    Ok(parsed
        .instance_type_set
        .items
        .into_iter()
        .filter_map(|t| {
            let info = t.v_cpu_info?;
            let cores = info.default_cores.unwrap_or(info.default_v_cpus);
            Some((t.instance_type, CpuInfo { vcpus: info.default_v_cpus, cores }))
        })
        .collect())
}

/// The first `(code, message)` of an EC2 error response, or `None` if `body` is not one.
pub fn error(body: &str) -> Option<(String, String)> {
    let parsed: ErrorResponse = quick_xml::de::from_str(body).ok()?;
    let first = parsed.errors.error.into_iter().next()?;
    Some((first.code, first.message.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
  <reservationSet>
    <item>
      <reservationId>r-1</reservationId>
      <ownerId>123456789012</ownerId>
      <groupSet/>
      <instancesSet>
        <item>
          <instanceId>i-1</instanceId>
          <imageId>ami-1</imageId>
          <instanceState><code>16</code><name>running</name></instanceState>
          <privateDnsName>ip-10-0-0-5.ec2.internal</privateDnsName>
          <dnsName/>
          <instanceType>c5.large</instanceType>
          <launchTime>2026-11-21T00:35:53.000Z</launchTime>
          <privateIpAddress>10.0.0.5</privateIpAddress>
          <ipv6Address>2600:1f18::5</ipv6Address>
          <tagSet>
            <item><key>Cluster</key><value>demo</value></item>
            <item><key>Empty</key><value/></item>
          </tagSet>
        </item>
        <item>
          <instanceId>i-2</instanceId>
          <instanceState><code>0</code><name>pending</name></instanceState>
          <instanceType>t3.micro</instanceType>
          <ipAddress>3.3.3.3</ipAddress>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
  <nextToken>tok-2</nextToken>
</DescribeInstancesResponse>"#;

    #[test]
    fn parses_instances_page() {
        let page = instances_page(PAGE).unwrap();
        assert_eq!(page.next_token.as_deref(), Some("tok-2"));
        assert_eq!(page.instances.len(), 2);
        let a = &page.instances[0];
        assert_eq!(a.id, "i-1");
        assert_eq!(a.instance_type, "c5.large");
        assert_eq!(a.state, "running");
        assert_eq!(a.private_ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(a.private_dns.as_deref(), Some("ip-10-0-0-5.ec2.internal"));
        assert_eq!(a.public_dns, None);
        assert_eq!(a.ipv6.as_deref(), Some("2600:1f18::5"));
        assert_eq!(a.launch_time, Timestamp::parse("2026-11-21T00:35:53Z"));
        assert_eq!(a.tag("Cluster"), Some("demo"));
        assert_eq!(a.tag("Empty"), Some(""));
        let b = &page.instances[1];
        assert_eq!((b.state.as_str(), b.private_ip.as_deref()), ("pending", None));
        assert_eq!(b.public_ip.as_deref(), Some("3.3.3.3"));
        assert!(b.tags.is_empty());
    }

    #[test]
    fn empty_page_has_no_token() {
        let body =
            "<DescribeInstancesResponse><reservationSet/><nextToken/></DescribeInstancesResponse>";
        let page = instances_page(body).unwrap();
        assert!(page.instances.is_empty());
        assert_eq!(page.next_token, None);
    }

    #[test]
    fn parses_instance_types() {
        let body = r#"<DescribeInstanceTypesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <instanceTypeSet>
    <item><instanceType>m5.xlarge</instanceType><currentGeneration>true</currentGeneration>
      <vCpuInfo><defaultVCpus>4</defaultVCpus><defaultCores>2</defaultCores>
        <defaultThreadsPerCore>2</defaultThreadsPerCore>
        <validCores><item>2</item></validCores></vCpuInfo></item>
    <item><instanceType>t2.micro</instanceType><vCpuInfo><defaultVCpus>1</defaultVCpus></vCpuInfo></item>
  </instanceTypeSet>
</DescribeInstanceTypesResponse>"#;
        assert_eq!(
            instance_types(body).unwrap(),
            vec![
                ("m5.xlarge".to_string(), CpuInfo { vcpus: 4, cores: 2 }),
                ("t2.micro".to_string(), CpuInfo { vcpus: 1, cores: 1 }),
            ]
        );
    }

    #[test]
    fn parses_errors() {
        let body =
            "<?xml version=\"1.0\"?><Response><Errors><Error><Code>UnauthorizedOperation</Code>\
                    <Message>You are not authorized to perform this operation.</Message></Error>\
                    </Errors><RequestID>abc</RequestID></Response>";
        assert_eq!(
            error(body),
            Some((
                "UnauthorizedOperation".to_string(),
                "You are not authorized to perform this operation.".to_string()
            ))
        );
        assert_eq!(error("Service Unavailable"), None);
        assert!(instances_page("<html>").is_err());
    }
}
