//! The cluster's security group `rmpi-NAME`: all traffic between its members, SSH (TCP 22)
//! from one CIDR, nothing else inbound (outbound stays EC2's default: everything).
//!
//! `up` reuses the group when it is there and was made by `up` for this cluster, and brings its
//! inbound rules back to exactly the stated ones (adding what is missing, revoking the rest).
//! The group also records, in the tag [`PLACEMENT_TAG`], which placement group `up` made, so
//! that `down` knows what to delete.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use super::responses::{self, SecurityGroupInfo};
use super::{ask, params, settle, Ctx};
use crate::error::{Error, Result};
use crate::query::{self, Filter};

/// The tag of the security group naming the placement group `up` made (`none` if it made none).
pub const PLACEMENT_TAG: &str = "rmpi-ec2:placement-group";

/// Who an inbound rule admits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// Members of a security group.
    Group(String),
    /// An IPv4 range.
    Cidr(String),
    /// An IPv6 range.
    Cidr6(String),
}

/// One inbound rule: protocol (`-1` for all traffic), port range, source.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rule {
    /// `-1`, `tcp`, `udp`, `icmp`...
    pub protocol: String,
    /// Port range (`None` for all traffic).
    pub ports: Option<(i32, i32)>,
    /// Who is admitted.
    pub source: Source,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.protocol.as_str(), self.ports) {
            ("-1", _) => write!(f, "all traffic")?,
            (p, Some((a, b))) if a == b => write!(f, "{p} port {a}")?,
            (p, Some((a, b))) => write!(f, "{p} ports {a}-{b}")?,
            (p, None) => write!(f, "{p}")?,
        }
        match &self.source {
            Source::Group(g) => write!(f, " from {g}"),
            Source::Cidr(c) | Source::Cidr6(c) => write!(f, " from {c}"),
        }
    }
}

/// The rules the cluster's group must have: everything from itself, SSH from `ssh_cidr`.
pub fn wanted(group_id: &str, ssh_cidr: Option<&str>) -> BTreeSet<Rule> {
    let mut rules = BTreeSet::from([Rule {
        protocol: "-1".into(),
        ports: None,
        source: Source::Group(group_id.into()),
    }]);
    if let Some(cidr) = ssh_cidr {
        let source =
            if cidr.contains(':') { Source::Cidr6(cidr.into()) } else { Source::Cidr(cidr.into()) };
        rules.insert(Rule { protocol: "tcp".into(), ports: Some((22, 22)), source });
    }
    rules
}

/// The rules of a described group, one per (protocol, ports, source).
pub fn rules_of(group: &SecurityGroupInfo) -> BTreeSet<Rule> {
    let mut rules = BTreeSet::new();
    for p in &group.ingress {
        let protocol = if p.protocol == "all" { "-1".to_string() } else { p.protocol.clone() };
        let ports = match (protocol.as_str(), p.from_port, p.to_port) {
            ("-1", _, _) => None,
            (_, Some(a), Some(b)) => Some((a, b)),
            _ => None,
        };
        let sources = p
            .groups
            .iter()
            .cloned()
            .map(Source::Group)
            .chain(p.cidrs.iter().cloned().map(Source::Cidr))
            .chain(p.cidrs_v6.iter().cloned().map(Source::Cidr6));
        for source in sources {
            rules.insert(Rule { protocol: protocol.clone(), ports, source });
        }
    }
    rules
}

/// `IpPermissions.N` parameters of Authorize/RevokeSecurityGroupIngress for `rules`.
pub fn permission_params(group_id: &str, rules: &BTreeSet<Rule>) -> Vec<(String, String)> {
    let mut p = params(&[("GroupId", group_id)]);
    for (i, rule) in rules.iter().enumerate() {
        let prefix = format!("IpPermissions.{}", i + 1);
        p.push((format!("{prefix}.IpProtocol"), rule.protocol.clone()));
        if let Some((from, to)) = rule.ports {
            p.push((format!("{prefix}.FromPort"), from.to_string()));
            p.push((format!("{prefix}.ToPort"), to.to_string()));
        }
        p.push(match &rule.source {
            Source::Group(g) => (format!("{prefix}.Groups.1.GroupId"), g.clone()),
            Source::Cidr(c) => (format!("{prefix}.IpRanges.1.CidrIp"), c.clone()),
            Source::Cidr6(c) => (format!("{prefix}.Ipv6Ranges.1.CidrIpv6"), c.clone()),
        });
    }
    p
}

/// Checks a `--ssh-cidr`: an IPv4 or IPv6 network in CIDR notation, without host bits.
pub fn parse_cidr(text: &str) -> Result<String> {
    let bad = |reason: String| Error::Usage(format!("invalid --ssh-cidr `{text}`: {reason}"));
    let (addr, len) = text
        .split_once('/')
        .ok_or_else(|| bad("expected ADDRESS/LENGTH, e.g. 203.0.113.7/32".into()))?;
    let len: u32 = len.parse().map_err(|_| bad("the prefix length is not a number".into()))?;
    let (bits, width) = if let Ok(v4) = addr.parse::<Ipv4Addr>() {
        (u128::from(u32::from(v4)), 32)
    } else if let Ok(v6) = addr.parse::<Ipv6Addr>() {
        (u128::from(v6), 128)
    } else {
        return Err(bad("not an IPv4 or IPv6 address".into()));
    };
    if len > width {
        return Err(bad(format!("the prefix length is at most {width}")));
    }
    let host_mask = if len == 0 { u128::MAX } else { (1u128 << (width - len)) - 1 };
    if bits & host_mask != 0 {
        return Err(bad("host bits are set (e.g. use /32 for one address)".into()));
    }
    Ok(text.to_string())
}

/// The group `rmpi-NAME` in `vpc_id`, if it exists.
fn find(ctx: &Ctx<'_>, vpc_id: &str) -> Result<Option<SecurityGroupInfo>> {
    let filters = [
        Filter { name: "group-name".into(), values: vec![ctx.cluster.resource_name()] },
        Filter { name: "vpc-id".into(), values: vec![vpc_id.into()] },
    ];
    Ok(describe(ctx, &filters)?.into_iter().next())
}

fn describe(ctx: &Ctx<'_>, filters: &[Filter]) -> Result<Vec<SecurityGroupInfo>> {
    ask(
        ctx.client,
        "DescribeSecurityGroups",
        &query::filter_params(filters),
        responses::security_groups,
    )
    .map_err(|e| e.during("listing security groups"))
}

fn change(
    ctx: &Ctx<'_>,
    action: &str,
    verb: &str,
    group_id: &str,
    rules: &BTreeSet<Rule>,
) -> Result<()> {
    if rules.is_empty() {
        return Ok(());
    }
    let list = rules.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    if ctx.skip(&format!("{verb} on {group_id}: {list}")) {
        return Ok(());
    }
    ctx.client
        .call(action, &permission_params(group_id, rules))
        .map_err(|e| e.during(format!("{verb} on security group {group_id}")))?;
    (ctx.say)(&format!("{verb} on {group_id}: {list}"));
    Ok(())
}

/// The id of the cluster's security group in `vpc_id`, created or reused, with exactly the
/// stated inbound rules, tagged with the placement group `up` makes (`placement`).
pub fn ensure(
    ctx: &Ctx<'_>,
    vpc_id: &str,
    ssh_cidr: Option<&str>,
    placement: Option<&str>,
) -> Result<String> {
    let name = ctx.cluster.resource_name();
    let placement_value = placement.unwrap_or("none");
    let (id, current) = match find(ctx, vpc_id)? {
        Some(group) => {
            if !ctx.cluster.owns(&group.tags) {
                return Err(Error::Conflict {
                    resource: format!("security group {name} ({}) in {vpc_id}", group.id),
                    reason: format!(
                        "exists but was not made by rmpi-ec2 up for cluster {}; it is left alone: \
                         delete it or pick another cluster name",
                        ctx.cluster
                    ),
                });
            }
            (ctx.say)(&format!("security group {name} ({}) exists: reusing it", group.id));
            if group.tag(PLACEMENT_TAG) != Some(placement_value)
                && !ctx.skip(&format!("tag {} with {PLACEMENT_TAG}={placement_value}", group.id))
            {
                let p = params(&[
                    ("ResourceId.1", &group.id),
                    ("Tag.1.Key", PLACEMENT_TAG),
                    ("Tag.1.Value", placement_value),
                ]);
                ctx.client
                    .call("CreateTags", &p)
                    .map_err(|e| e.during(format!("tagging security group {}", group.id)))?;
            }
            let current = rules_of(&group);
            (group.id, current)
        }
        None => {
            if ctx.skip(&format!("create security group {name} in {vpc_id}")) {
                ("sg-(new)".to_string(), BTreeSet::new())
            } else {
                let mut p = params(&[
                    ("GroupName", &name),
                    (
                        "GroupDescription",
                        &format!("rmpi cluster {} (made by rmpi-ec2 up)", ctx.cluster),
                    ),
                    ("VpcId", vpc_id),
                ]);
                p.extend(ctx.cluster.tag_specification(1, "security-group"));
                p.push(("TagSpecification.1.Tag.3.Key".into(), PLACEMENT_TAG.into()));
                p.push(("TagSpecification.1.Tag.3.Value".into(), placement_value.into()));
                let id = ask(
                    ctx.client,
                    "CreateSecurityGroup",
                    &p,
                    responses::created_security_group,
                )
                .map_err(|e| e.during(format!("creating security group {name} in {vpc_id}")))?;
                (ctx.say)(&format!("created security group {name} ({id}) in {vpc_id}"));
                (id, BTreeSet::new())
            }
        }
    };
    let wanted = wanted(&id, ssh_cidr);
    let extra: BTreeSet<Rule> = current.difference(&wanted).cloned().collect();
    let missing: BTreeSet<Rule> = wanted.difference(&current).cloned().collect();
    change(ctx, "RevokeSecurityGroupIngress", "revoke inbound", &id, &extra)?;
    change(ctx, "AuthorizeSecurityGroupIngress", "allow inbound", &id, &missing)?;
    Ok(id)
}

/// The security groups `up` made for the cluster.
pub fn owned(ctx: &Ctx<'_>) -> Result<Vec<SecurityGroupInfo>> {
    let found = describe(ctx, &ctx.cluster.owned_filters())?;
    Ok(found.into_iter().filter(|g| ctx.cluster.owns(&g.tags)).collect())
}

/// Deletes `group`, retrying while EC2 still sees network interfaces in it, until `deadline`.
pub fn delete(ctx: &Ctx<'_>, group: &SecurityGroupInfo, deadline: Instant) -> Result<()> {
    let what = format!("delete security group {} ({})", group.name, group.id);
    if ctx.skip(&what) {
        return Ok(());
    }
    let p = params(&[("GroupId", &group.id)]);
    settle::until_done(
        &format!("deleting security group {} ({})", group.name, group.id),
        &["DependencyViolation", "InvalidGroup.InUse"],
        deadline,
        || ctx.client.call("DeleteSecurityGroup", &p).map(drop),
    )?;
    (ctx.say)(&format!("deleted security group {} ({})", group.name, group.id));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::responses::PermissionInfo;

    #[test]
    fn wanted_rules_and_their_parameters() {
        let rules = wanted("sg-1", Some("203.0.113.7/32"));
        let shown: Vec<String> = rules.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["all traffic from sg-1", "tcp port 22 from 203.0.113.7/32"]);
        let p = permission_params("sg-1", &rules);
        let expected = [
            ("GroupId", "sg-1"),
            ("IpPermissions.1.IpProtocol", "-1"),
            ("IpPermissions.1.Groups.1.GroupId", "sg-1"),
            ("IpPermissions.2.IpProtocol", "tcp"),
            ("IpPermissions.2.FromPort", "22"),
            ("IpPermissions.2.ToPort", "22"),
            ("IpPermissions.2.IpRanges.1.CidrIp", "203.0.113.7/32"),
        ];
        assert_eq!(p, params(&expected));
        let v6 = wanted("sg-1", Some("2001:db8::/64"));
        assert!(v6.iter().any(|r| r.source == Source::Cidr6("2001:db8::/64".into())));
        assert_eq!(wanted("sg-1", None).len(), 1);
    }

    #[test]
    fn described_rules_are_split_per_source() {
        let group = SecurityGroupInfo {
            id: "sg-1".into(),
            name: "rmpi-x".into(),
            vpc_id: "vpc-1".into(),
            ingress: vec![
                PermissionInfo {
                    protocol: "-1".into(),
                    from_port: Some(-1),
                    to_port: Some(-1),
                    groups: vec!["sg-1".into()],
                    cidrs: vec![],
                    cidrs_v6: vec![],
                },
                PermissionInfo {
                    protocol: "tcp".into(),
                    from_port: Some(22),
                    to_port: Some(22),
                    groups: vec![],
                    cidrs: vec!["203.0.113.7/32".into(), "0.0.0.0/0".into()],
                    cidrs_v6: vec![],
                },
            ],
            tags: vec![],
        };
        let rules = rules_of(&group);
        assert_eq!(rules.len(), 3);
        let wanted = wanted("sg-1", Some("203.0.113.7/32"));
        let extra: Vec<String> = rules.difference(&wanted).map(ToString::to_string).collect();
        assert_eq!(extra, ["tcp port 22 from 0.0.0.0/0"]);
        assert_eq!(wanted.difference(&rules).count(), 0);
    }

    #[test]
    fn cidrs_are_checked() {
        assert_eq!(parse_cidr("203.0.113.7/32").unwrap(), "203.0.113.7/32");
        assert!(parse_cidr("10.0.0.0/8").is_ok());
        assert!(parse_cidr("2001:db8::/32").is_ok());
        assert!(parse_cidr("0.0.0.0/0").is_ok());
        for (bad, why) in [
            ("203.0.113.7", "ADDRESS/LENGTH"),
            ("203.0.113.7/24", "host bits"),
            ("203.0.113.7/33", "at most 32"),
            ("host/32", "not an IPv4"),
            ("10.0.0.0/x", "not a number"),
        ] {
            let err = parse_cidr(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
