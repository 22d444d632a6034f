//! `rmpi-ec2 down`: terminate the cluster's instances, wait until they are gone, then delete
//! the placement group, security group and key pair `up` made. Only what carries both of the
//! cluster's tags is touched; running it again, or on a cluster that does not exist, changes
//! nothing and says so.

use std::time::{Duration, Instant};

use super::{keypair, placement, security_group, up, Ctx};
use crate::error::{Error, Result};
use crate::query::Filter;

/// What `down` removed (or, in a dry run, would remove).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DownReport {
    /// Instances terminated.
    pub terminated: Vec<String>,
    /// Other resources deleted, as `kind name (id)`.
    pub deleted: Vec<String>,
}

/// Polls until none of `ids` is listed in a state other than `terminated`, or `deadline`.
fn wait_terminated(ctx: &Ctx<'_>, ids: &[String], deadline: Instant) -> Result<()> {
    let started = Instant::now();
    let filter = [Filter { name: "instance-id".into(), values: ids.to_vec() }];
    let mut delay = Duration::from_secs(1);
    loop {
        let left: Vec<String> = ctx
            .client
            .describe_instances(&filter, None)
            .map_err(|e| e.during("waiting for the instances to terminate"))?
            .into_iter()
            .filter(|i| ids.contains(&i.id) && i.state != "terminated")
            .map(|i| format!("{} ({})", i.id, i.state))
            .collect();
        if left.is_empty() {
            (ctx.say)(&format!(
                "{} instances terminated after {}s",
                ids.len(),
                started.elapsed().as_secs()
            ));
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Timeout {
                waited_secs: started.elapsed().as_secs(),
                what: format!("instances to terminate: {}", left.join(", ")),
            });
        }
        std::thread::sleep(delay.min(deadline - now));
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// Takes the cluster down; gives up waiting after `timeout`.
pub fn down(ctx: &Ctx<'_>, timeout: Duration) -> Result<DownReport> {
    let deadline = Instant::now() + timeout;
    let mut report = DownReport::default();
    let found = up::instances(ctx)?;
    let (ours, strangers): (Vec<_>, Vec<_>) =
        found.into_iter().partition(|i| ctx.cluster.owns(&i.tags));
    for i in &strangers {
        (ctx.say)(&format!(
            "instance {} carries Cluster={} but was not launched by rmpi-ec2 up: left alone",
            i.id, ctx.cluster
        ));
    }
    let ids: Vec<String> = ours.iter().map(|i| i.id.clone()).collect();
    if !ids.is_empty() && !ctx.skip(&format!("terminate {}", ids.join(", "))) {
        let p: Vec<(String, String)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (format!("InstanceId.{}", i + 1), id.clone()))
            .collect();
        ctx.client
            .call("TerminateInstances", &p)
            .map_err(|e| e.during(format!("terminating {}", ids.join(", "))))?;
        (ctx.say)(&format!("terminating {}", ids.join(", ")));
        wait_terminated(ctx, &ids, deadline)?;
    }
    report.terminated = ids;
    for group in security_group::owned(ctx)? {
        if let Some(name) = group.tag(security_group::PLACEMENT_TAG).filter(|n| *n != "none") {
            if placement::delete(ctx, name, deadline)? {
                report.deleted.push(format!("placement group {name}"));
            }
        }
        security_group::delete(ctx, &group, deadline)?;
        report.deleted.push(format!("security group {} ({})", group.name, group.id));
    }
    for key in keypair::owned(ctx)? {
        keypair::delete(ctx, &key)?;
        report.deleted.push(format!("key pair {} ({})", key.name, key.id));
    }
    if report.terminated.is_empty() && report.deleted.is_empty() {
        (ctx.say)(&format!(
            "nothing to remove: no instance, security group or key pair made by rmpi-ec2 up for cluster {}",
            ctx.cluster
        ));
    }
    Ok(report)
}
