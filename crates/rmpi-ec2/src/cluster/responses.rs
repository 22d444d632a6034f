//! The XML shapes of the EC2 responses that `up`, `down` and `list` read (Query API
//! 2016-11-15), parsed with `quick-xml`'s serde support like [`crate::xml`].

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::model::Instance;
use crate::xml::{self, Items, XmlInstance, XmlTag};

/// Parses `body` as the response `name`; the error text names the response.
fn parse<T: DeserializeOwned>(body: &str, name: &str) -> Result<T, String> {
    quick_xml::de::from_str(body).map_err(|e| format!("{name}: {e}"))
}

/// A key pair as DescribeKeyPairs or ImportKeyPair describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPairInfo {
    /// Key pair name (what RunInstances takes).
    pub name: String,
    /// `key-0123...`.
    pub id: String,
    /// EC2's fingerprint of the public key.
    pub fingerprint: String,
    /// Tags.
    pub tags: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct XmlKeyPair {
    key_name: String,
    key_pair_id: Option<String>,
    key_fingerprint: Option<String>,
    #[serde(default)]
    tag_set: Items<XmlTag>,
}

impl XmlKeyPair {
    fn into_info(self) -> KeyPairInfo {
        KeyPairInfo {
            name: self.key_name,
            id: xml::non_empty(self.key_pair_id).unwrap_or_default(),
            fingerprint: xml::non_empty(self.key_fingerprint).unwrap_or_default(),
            tags: xml::tags(self.tag_set),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeKeyPairsResponse {
    #[serde(default)]
    key_set: Items<XmlKeyPair>,
}

/// Parses DescribeKeyPairs.
pub fn key_pairs(body: &str) -> Result<Vec<KeyPairInfo>, String> {
    let parsed: DescribeKeyPairsResponse = parse(body, "DescribeKeyPairsResponse")?;
    Ok(parsed.key_set.items.into_iter().map(XmlKeyPair::into_info).collect())
}

/// Parses ImportKeyPair (the same fields as a DescribeKeyPairs item).
pub fn imported_key_pair(body: &str) -> Result<KeyPairInfo, String> {
    let parsed: XmlKeyPair = parse(body, "ImportKeyPairResponse")?;
    Ok(parsed.into_info())
}

/// One atom of an ingress rule as EC2 lists it: a protocol, a port range, and one source.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PermissionInfo {
    /// `tcp`, `udp`, `icmp`, `-1` (all)...
    pub protocol: String,
    /// First port (`None` for all traffic).
    pub from_port: Option<i32>,
    /// Last port.
    pub to_port: Option<i32>,
    /// Security groups allowed.
    pub groups: Vec<String>,
    /// IPv4 ranges allowed.
    pub cidrs: Vec<String>,
    /// IPv6 ranges allowed.
    pub cidrs_v6: Vec<String>,
}

/// A security group as DescribeSecurityGroups describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecurityGroupInfo {
    /// `sg-0123...`.
    pub id: String,
    /// Group name.
    pub name: String,
    /// The VPC it belongs to.
    pub vpc_id: String,
    /// Inbound permissions.
    pub ingress: Vec<PermissionInfo>,
    /// Tags.
    pub tags: Vec<(String, String)>,
}

impl SecurityGroupInfo {
    /// The value of tag `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct XmlGroupPair {
    group_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct XmlRange {
    cidr_ip: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct XmlRange6 {
    cidr_ipv6: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct XmlPermission {
    ip_protocol: String,
    from_port: Option<i32>,
    to_port: Option<i32>,
    #[serde(default)]
    groups: Items<XmlGroupPair>,
    #[serde(default)]
    ip_ranges: Items<XmlRange>,
    #[serde(default)]
    ipv6_ranges: Items<XmlRange6>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct XmlSecurityGroup {
    group_id: String,
    group_name: Option<String>,
    vpc_id: Option<String>,
    #[serde(default)]
    ip_permissions: Items<XmlPermission>,
    #[serde(default)]
    tag_set: Items<XmlTag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeSecurityGroupsResponse {
    #[serde(default)]
    security_group_info: Items<XmlSecurityGroup>,
}

/// Parses DescribeSecurityGroups.
pub fn security_groups(body: &str) -> Result<Vec<SecurityGroupInfo>, String> {
    let parsed: DescribeSecurityGroupsResponse = parse(body, "DescribeSecurityGroupsResponse")?;
    Ok(parsed
        .security_group_info
        .items
        .into_iter()
        .map(|g| SecurityGroupInfo {
            id: g.group_id,
            name: xml::non_empty(g.group_name).unwrap_or_default(),
            vpc_id: xml::non_empty(g.vpc_id).unwrap_or_default(),
            ingress: g
                .ip_permissions
                .items
                .into_iter()
                .map(|p| PermissionInfo {
                    protocol: p.ip_protocol,
                    from_port: p.from_port,
                    to_port: p.to_port,
                    groups: p.groups.items.into_iter().filter_map(|g| g.group_id).collect(),
                    cidrs: p.ip_ranges.items.into_iter().filter_map(|r| r.cidr_ip).collect(),
                    cidrs_v6: p.ipv6_ranges.items.into_iter().filter_map(|r| r.cidr_ipv6).collect(),
                })
                .collect(),
            tags: xml::tags(g.tag_set),
        })
        .collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateSecurityGroupResponse {
    group_id: String,
}

/// The id in a CreateSecurityGroup response.
pub fn created_security_group(body: &str) -> Result<String, String> {
    let parsed: CreateSecurityGroupResponse = parse(body, "CreateSecurityGroupResponse")?;
    Ok(parsed.group_id)
}

/// A placement group as DescribePlacementGroups describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacementGroupInfo {
    /// Group name.
    pub name: String,
    /// `cluster`, `spread`, `partition`.
    pub strategy: String,
    /// `pending`, `available`, `deleting`, `deleted`.
    pub state: String,
    /// Tags.
    pub tags: Vec<(String, String)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct XmlPlacementGroup {
    group_name: String,
    strategy: Option<String>,
    state: Option<String>,
    #[serde(default)]
    tag_set: Items<XmlTag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribePlacementGroupsResponse {
    #[serde(default)]
    placement_group_set: Items<XmlPlacementGroup>,
}

/// Parses DescribePlacementGroups.
pub fn placement_groups(body: &str) -> Result<Vec<PlacementGroupInfo>, String> {
    let parsed: DescribePlacementGroupsResponse = parse(body, "DescribePlacementGroupsResponse")?;
    Ok(parsed
        .placement_group_set
        .items
        .into_iter()
        .map(|g| PlacementGroupInfo {
            name: g.group_name,
            strategy: xml::non_empty(g.strategy).unwrap_or_default(),
            state: xml::non_empty(g.state).unwrap_or_default(),
            tags: xml::tags(g.tag_set),
        })
        .collect())
}

/// A subnet: its VPC and availability zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetInfo {
    /// `subnet-0123...`.
    pub id: String,
    /// `vpc-0123...`.
    pub vpc_id: String,
    /// `us-east-1a`.
    pub zone: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct XmlSubnet {
    subnet_id: String,
    vpc_id: String,
    availability_zone: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeSubnetsResponse {
    #[serde(default)]
    subnet_set: Items<XmlSubnet>,
}

/// Parses DescribeSubnets.
pub fn subnets(body: &str) -> Result<Vec<SubnetInfo>, String> {
    let parsed: DescribeSubnetsResponse = parse(body, "DescribeSubnetsResponse")?;
    Ok(parsed
        .subnet_set
        .items
        .into_iter()
        .map(|s| SubnetInfo {
            id: s.subnet_id,
            vpc_id: s.vpc_id,
            zone: xml::non_empty(s.availability_zone).unwrap_or_default(),
        })
        .collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct XmlVpc {
    vpc_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeVpcsResponse {
    #[serde(default)]
    vpc_set: Items<XmlVpc>,
}

/// The VPC ids of a DescribeVpcs response.
pub fn vpcs(body: &str) -> Result<Vec<String>, String> {
    let parsed: DescribeVpcsResponse = parse(body, "DescribeVpcsResponse")?;
    Ok(parsed.vpc_set.items.into_iter().map(|v| v.vpc_id).collect())
}

/// An image: id, name, architecture and creation date (RFC 3339 text, sorts chronologically).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// `ami-0123...`.
    pub id: String,
    /// Image name.
    pub name: String,
    /// `x86_64`, `arm64`.
    pub architecture: String,
    /// When it was made.
    pub creation_date: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct XmlImage {
    image_id: String,
    name: Option<String>,
    architecture: Option<String>,
    creation_date: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeImagesResponse {
    #[serde(default)]
    images_set: Items<XmlImage>,
}

/// Parses DescribeImages.
pub fn images(body: &str) -> Result<Vec<ImageInfo>, String> {
    let parsed: DescribeImagesResponse = parse(body, "DescribeImagesResponse")?;
    Ok(parsed
        .images_set
        .items
        .into_iter()
        .map(|i| ImageInfo {
            id: i.image_id,
            name: xml::non_empty(i.name).unwrap_or_default(),
            architecture: xml::non_empty(i.architecture).unwrap_or_default(),
            creation_date: xml::non_empty(i.creation_date).unwrap_or_default(),
        })
        .collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct XmlProcessorInfo {
    #[serde(default)]
    supported_architectures: Items<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct XmlTypeArchitectures {
    instance_type: String,
    processor_info: Option<XmlProcessorInfo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeInstanceTypesArchitectures {
    #[serde(default)]
    instance_type_set: Items<XmlTypeArchitectures>,
}

/// `(instance type, supported architectures)` pairs of a DescribeInstanceTypes response.
pub fn architectures(body: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let parsed: DescribeInstanceTypesArchitectures = parse(body, "DescribeInstanceTypesResponse")?;
    Ok(parsed
        .instance_type_set
        .items
        .into_iter()
        .map(|t| {
            let archs = t.processor_info.map(|p| p.supported_architectures.items);
            (t.instance_type, archs.unwrap_or_default())
        })
        .collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunInstancesResponse {
    #[serde(default)]
    instances_set: Items<XmlInstance>,
}

/// The instances of a RunInstances response.
pub fn launched(body: &str) -> Result<Vec<Instance>, String> {
    let parsed: RunInstancesResponse = parse(body, "RunInstancesResponse")?;
    Ok(parsed.instances_set.items.into_iter().map(XmlInstance::into_instance).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_security_group_rules() {
        let body = r#"<DescribeSecurityGroupsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
 <securityGroupInfo><item><ownerId>1</ownerId><groupId>sg-1</groupId><groupName>rmpi-demo</groupName>
  <vpcId>vpc-1</vpcId>
  <ipPermissions>
   <item><ipProtocol>-1</ipProtocol><groups><item><groupId>sg-1</groupId><userId>1</userId></item></groups>
     <ipRanges/><ipv6Ranges/></item>
   <item><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort><groups/>
     <ipRanges><item><cidrIp>203.0.113.7/32</cidrIp></item></ipRanges></item>
  </ipPermissions>
  <ipPermissionsEgress><item><ipProtocol>-1</ipProtocol></item></ipPermissionsEgress>
  <tagSet><item><key>Cluster</key><value>demo</value></item></tagSet></item></securityGroupInfo>
</DescribeSecurityGroupsResponse>"#;
        let groups = security_groups(body).unwrap();
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!(
            (g.id.as_str(), g.name.as_str(), g.vpc_id.as_str()),
            ("sg-1", "rmpi-demo", "vpc-1")
        );
        assert_eq!(g.tag("Cluster"), Some("demo"));
        assert_eq!(g.ingress.len(), 2);
        assert_eq!(g.ingress[0].groups, ["sg-1"]);
        assert_eq!(g.ingress[0].from_port, None);
        assert_eq!(g.ingress[1].cidrs, ["203.0.113.7/32"]);
        assert_eq!((g.ingress[1].from_port, g.ingress[1].to_port), (Some(22), Some(22)));
    }

    #[test]
    fn parses_run_instances_and_key_pairs() {
        let body = r#"<RunInstancesResponse><reservationId>r-1</reservationId><instancesSet>
 <item><instanceId>i-1</instanceId><instanceType>c5.large</instanceType>
 <instanceState><code>0</code><name>pending</name></instanceState></item>
 <item><instanceId>i-2</instanceId></item></instancesSet></RunInstancesResponse>"#;
        let got = launched(body).unwrap();
        assert_eq!(got.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["i-1", "i-2"]);
        assert_eq!(got[0].state, "pending");
        let body = r#"<DescribeKeyPairsResponse><keySet><item><keyPairId>key-1</keyPairId>
 <keyFingerprint>ab:cd</keyFingerprint><keyName>mine</keyName><tagSet/></item></keySet>
 </DescribeKeyPairsResponse>"#;
        let keys = key_pairs(body).unwrap();
        assert_eq!(keys[0].name, "mine");
        assert_eq!(keys[0].fingerprint, "ab:cd");
        assert!(key_pairs("<DescribeKeyPairsResponse><keySet/></DescribeKeyPairsResponse>")
            .unwrap()
            .is_empty());
    }
}
