//! Where the cluster goes: the VPC, and the subnets to launch into (the one given and the
//! fallbacks, which must all be in the same VPC since the security group belongs to one).

use super::responses::{self, SubnetInfo};
use super::{ask, params};
use crate::error::{Error, Result};
use crate::query::Client;

/// The VPC and the subnets, in the order launches try them (`None`: EC2's default subnet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    /// `vpc-0123...`.
    pub vpc_id: String,
    /// Subnets to try, in order.
    pub subnets: Vec<Option<SubnetInfo>>,
}

/// Looks up `subnets` (the given one first, then fallbacks); with none, the region's default
/// VPC and its default subnet.
pub fn resolve(client: &Client, subnets: &[String]) -> Result<Network> {
    if subnets.is_empty() {
        let p = params(&[("Filter.1.Name", "is-default"), ("Filter.1.Value.1", "true")]);
        let vpcs = ask(client, "DescribeVpcs", &p, responses::vpcs)
            .map_err(|e| e.during("looking up the default VPC"))?;
        let vpc_id = vpcs.into_iter().next().ok_or_else(|| Error::Conflict {
            resource: format!("region {}", client.region()),
            reason: "has no default VPC: pass --subnet".into(),
        })?;
        return Ok(Network { vpc_id, subnets: vec![None] });
    }
    let mut p = Vec::new();
    for (i, s) in subnets.iter().enumerate() {
        p.push((format!("SubnetId.{}", i + 1), s.clone()));
    }
    let found = ask(client, "DescribeSubnets", &p, responses::subnets)
        .map_err(|e| e.during(format!("looking up subnets {}", subnets.join(", "))))?;
    let mut ordered = Vec::new();
    for id in subnets {
        let subnet = found.iter().find(|s| &s.id == id).ok_or_else(|| Error::Conflict {
            resource: format!("subnet {id}"),
            reason: format!("not found in {}", client.region()),
        })?;
        ordered.push(subnet.clone());
    }
    let vpc_id = ordered[0].vpc_id.clone();
    if let Some(other) = ordered.iter().find(|s| s.vpc_id != vpc_id) {
        return Err(Error::Conflict {
            resource: format!("subnet {} ({})", other.id, other.vpc_id),
            reason: format!(
                "is not in {vpc_id} like subnet {}: fallback subnets must share the VPC",
                ordered[0].id
            ),
        });
    }
    Ok(Network { vpc_id, subnets: ordered.into_iter().map(Some).collect() })
}
