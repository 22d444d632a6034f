//! The cluster placement group `rmpi-NAME` (strategy `cluster`: the instances are packed close
//! together in one availability zone for low latency between them).
//!
//! Not every instance type can be placed in a cluster placement group (burstable `t2`/`t3`
//! types cannot); `up --no-placement-group` skips it.

use std::time::Instant;

use super::responses::{self, PlacementGroupInfo};
use super::{ask, params, settle, Ctx};
use crate::error::{Error, Result};

/// The placement group called `name`, if it exists.
fn find(ctx: &Ctx<'_>, name: &str) -> Result<Option<PlacementGroupInfo>> {
    let p = params(&[("Filter.1.Name", "group-name"), ("Filter.1.Value.1", name)]);
    let found = ask(ctx.client, "DescribePlacementGroups", &p, responses::placement_groups)
        .map_err(|e| e.during(format!("looking up placement group {name}")))?;
    Ok(found.into_iter().find(|g| g.name == name && g.state != "deleted"))
}

/// The name of the cluster's placement group, created or reused.
pub fn ensure(ctx: &Ctx<'_>) -> Result<String> {
    let name = ctx.cluster.resource_name();
    if let Some(group) = find(ctx, &name)? {
        if !ctx.cluster.owns(&group.tags) || group.strategy != "cluster" {
            return Err(Error::Conflict {
                resource: format!(
                    "placement group {name} (strategy {}, {})",
                    group.strategy, group.state
                ),
                reason: format!(
                    "exists but was not made by rmpi-ec2 up for cluster {}; it is left alone: \
                     delete it, pick another cluster name, or pass --no-placement-group",
                    ctx.cluster
                ),
            });
        }
        (ctx.say)(&format!("placement group {name} exists: reusing it"));
        return Ok(name);
    }
    if ctx.skip(&format!("create cluster placement group {name}")) {
        return Ok(name);
    }
    let mut p = params(&[("GroupName", &name), ("Strategy", "cluster")]);
    p.extend(ctx.cluster.tag_specification(1, "placement-group"));
    ctx.client
        .call("CreatePlacementGroup", &p)
        .map_err(|e| e.during(format!("creating placement group {name}")))?;
    (ctx.say)(&format!("created cluster placement group {name}"));
    Ok(name)
}

/// Deletes placement group `name` if it exists and `up` made it for the cluster, retrying while
/// its instances are still shutting down, until `deadline`. Returns whether one was deleted.
pub fn delete(ctx: &Ctx<'_>, name: &str, deadline: Instant) -> Result<bool> {
    let Some(group) = find(ctx, name)? else { return Ok(false) };
    if !ctx.cluster.owns(&group.tags) {
        (ctx.say)(&format!(
            "placement group {name} was not made by rmpi-ec2 up for this cluster: left alone"
        ));
        return Ok(false);
    }
    if ctx.skip(&format!("delete placement group {name}")) {
        return Ok(true);
    }
    let p = params(&[("GroupName", name)]);
    settle::until_done(
        &format!("deleting placement group {name}"),
        &["InvalidPlacementGroup.InUse", "DependencyViolation"],
        deadline,
        || ctx.client.call("DeletePlacementGroup", &p).map(drop),
    )?;
    (ctx.say)(&format!("deleted placement group {name}"));
    Ok(true)
}
