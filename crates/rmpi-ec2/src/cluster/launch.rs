//! Launching the cluster's instances all-or-nothing.
//!
//! One RunInstances call asks for `MinCount = MaxCount = N`, so EC2 itself either launches N
//! instances or none; the count received is still checked, and if it is short the instances
//! received are terminated at once. When EC2 has no capacity (`InsufficientInstanceCapacity`,
//! or the type is not offered in the zone) or gives too few, the next (instance type, subnet)
//! pair is tried: every subnet with the first type, then every subnet with each fallback type.
//! Each call carries a fresh `ClientToken`, so a retried request cannot launch twice.

use super::responses::{self, SubnetInfo};
use super::{ask, params, Ctx};
use crate::error::{Error, Result};
use crate::model::Instance;
use crate::query;

/// Error codes after which the next instance type or subnet is worth trying: no capacity, or
/// the type is not offered in the subnet's zone.
pub fn worth_another_try(code: &str) -> bool {
    query::CAPACITY_CODES.contains(&code) || code == "Unsupported"
}

/// What to launch.
#[derive(Clone, Debug)]
pub struct LaunchSpec<'a> {
    /// Instances wanted.
    pub count: usize,
    /// Image id.
    pub image: &'a str,
    /// Instance types, the preferred one first.
    pub types: &'a [String],
    /// Subnets, the preferred one first (`None`: EC2's default subnet).
    pub subnets: &'a [Option<SubnetInfo>],
    /// Key pair name.
    pub key_name: &'a str,
    /// Security group id.
    pub security_group: &'a str,
    /// Placement group name.
    pub placement: Option<&'a str>,
}

fn subnet_name(subnet: &Option<SubnetInfo>) -> String {
    match subnet {
        Some(s) => format!("subnet {} ({})", s.id, s.zone),
        None => "the default subnet".into(),
    }
}

/// The RunInstances parameters of one attempt.
pub fn run_params(
    ctx: &Ctx<'_>,
    spec: &LaunchSpec<'_>,
    instance_type: &str,
    subnet: &Option<SubnetInfo>,
    token: &str,
) -> Vec<(String, String)> {
    let count = spec.count.to_string();
    let mut p = params(&[
        ("ImageId", spec.image),
        ("InstanceType", instance_type),
        ("MinCount", &count),
        ("MaxCount", &count),
        ("KeyName", spec.key_name),
        ("SecurityGroupId.1", spec.security_group),
        ("ClientToken", token),
    ]);
    if let Some(s) = subnet {
        p.push(("SubnetId".into(), s.id.clone()));
    }
    if let Some(group) = spec.placement {
        p.push(("Placement.GroupName".into(), group.into()));
    }
    p.extend(ctx.cluster.tag_specification(1, "instance"));
    p.extend(ctx.cluster.tag_specification(2, "volume"));
    p
}

/// Terminates `ids` (a roll-back); says what it did.
fn roll_back(ctx: &Ctx<'_>, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let p: Vec<(String, String)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (format!("InstanceId.{}", i + 1), id.clone()))
        .collect();
    ctx.client.call("TerminateInstances", &p).map_err(|e| {
        e.during(format!(
            "terminating {} after a short launch; terminate them by hand",
            ids.join(", ")
        ))
    })?;
    (ctx.say)(&format!("terminated {}", ids.join(", ")));
    Ok(())
}

/// Launches `spec.count` instances, trying the types and subnets in order; returns them, or
/// fails with [`Error::Launch`] saying what each attempt got (and that it was terminated).
pub fn launch(ctx: &Ctx<'_>, spec: &LaunchSpec<'_>) -> Result<Vec<Instance>> {
    let mut attempts = Vec::new();
    for instance_type in spec.types {
        for subnet in spec.subnets {
            let place = subnet_name(subnet);
            let what = format!("launch {} {instance_type} instances in {place}", spec.count);
            if ctx.skip(&format!(
                "{what} (image {}, key pair {}, security group {}{})",
                spec.image,
                spec.key_name,
                spec.security_group,
                spec.placement.map(|g| format!(", placement group {g}")).unwrap_or_default()
            )) {
                return Ok(Vec::new());
            }
            // At most 64 characters, unique per attempt, the same for retries of this request.
            let token =
                format!("rmpi-{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
            let p = run_params(ctx, spec, instance_type, subnet, &token);
            match ask(ctx.client, "RunInstances", &p, responses::launched) {
                Ok(got) if got.len() == spec.count => {
                    let ids: Vec<&str> = got.iter().map(|i| i.id.as_str()).collect();
                    (ctx.say)(&format!(
                        "launched {} {instance_type} instances in {place}: {}",
                        got.len(),
                        ids.join(", ")
                    ));
                    return Ok(got);
                }
                Ok(got) => {
                    let ids: Vec<String> = got.iter().map(|i| i.id.clone()).collect();
                    (ctx.say)(&format!(
                        "EC2 gave {} of {} {instance_type} instances in {place}: rolling back",
                        got.len(),
                        spec.count
                    ));
                    roll_back(ctx, &ids)?;
                    attempts.push(format!(
                        "{instance_type} in {place}: EC2 gave only {} (terminated {})",
                        got.len(),
                        if ids.is_empty() { "none".into() } else { ids.join(", ") }
                    ));
                }
                Err(e) if e.ec2_code().is_some_and(worth_another_try) => {
                    (ctx.say)(&format!("{instance_type} in {place}: {e}"));
                    attempts.push(format!(
                        "{instance_type} in {place}: {}",
                        e.ec2_code().unwrap_or_default()
                    ));
                }
                Err(e) => {
                    return Err(e.during(format!(
                        "launching {} {instance_type} instances in {place}",
                        spec.count
                    )))
                }
            }
        }
    }
    let tried_all = spec.types.len() > 1 || spec.subnets.len() > 1;
    Err(Error::Launch {
        cluster: ctx.cluster.to_string(),
        count: spec.count,
        attempts: attempts.join("; "),
        note: if tried_all {
            String::new()
        } else {
            " (--fallback-type and --fallback-subnet give other choices to try)".into()
        },
    })
}
