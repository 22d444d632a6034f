//! `rmpi-ec2 up`: key pair, security group, placement group, instances, then wait.
//!
//! Run twice, it reuses what the first run made and launches only what is missing (none when
//! the cluster already has its instances). Nothing is changed before every check that can fail
//! early (the key file, instances in the way, the subnets, the image) has passed.

use std::path::PathBuf;

use super::launch::{self, LaunchSpec};
use super::sshkey::PublicKey;
use super::{image, keypair, network, placement, security_group, Ctx};
use crate::error::{Error, Result};
use crate::model::Instance;
use crate::select::{self, DEFAULT_ORDER_TAG};
use crate::wait::{self, WaitSpec};

/// What `up` is asked for.
#[derive(Clone, Debug)]
pub struct UpSpec {
    /// Instances wanted.
    pub count: usize,
    /// Instance type.
    pub instance_type: String,
    /// Types to try, in order, when EC2 has no capacity for `instance_type`.
    pub fallback_types: Vec<String>,
    /// Image id (`None`: the newest Amazon Linux 2023 for the type's architecture).
    pub image: Option<String>,
    /// Subnet (`None`: the default VPC's default subnet).
    pub subnet: Option<String>,
    /// Subnets to try, in order, when EC2 has no capacity in `subnet`.
    pub fallback_subnets: Vec<String>,
    /// The user's OpenSSH public key file.
    pub key_file: PathBuf,
    /// Where SSH may come from (`None`: only from the cluster's own members).
    pub ssh_cidr: Option<String>,
    /// Whether to make and use a cluster placement group.
    pub placement_group: bool,
    /// What "ready" means and how long to wait for it.
    pub wait: WaitSpec,
}

/// States of instances that count as (part of) a cluster.
pub const LIVE_STATES: [&str; 5] = ["pending", "running", "stopping", "stopped", "shutting-down"];

/// The cluster's instances that are not terminated (any maker), sorted by id.
pub fn instances(ctx: &Ctx<'_>) -> Result<Vec<Instance>> {
    let selectors = ctx.cluster.selectors();
    let mut found: Vec<Instance> = ctx
        .client
        .describe_instances(&select::filters(&selectors, &LIVE_STATES), None)
        .map_err(|e| e.during(format!("listing the instances of cluster {}", ctx.cluster)))?
        .into_iter()
        .filter(|i| select::matches(i, &selectors, &LIVE_STATES))
        .collect();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    select::dedup(&mut found);
    Ok(found)
}

/// How many of the cluster's instances are up already; fails when some are in the way.
fn existing(ctx: &Ctx<'_>, count: usize) -> Result<usize> {
    // Instances shutting down (e.g. after a rolled-back launch) are on their way out.
    let found: Vec<Instance> =
        instances(ctx)?.into_iter().filter(|i| i.state != "shutting-down").collect();
    let ids = |pick: &dyn Fn(&Instance) -> bool| -> Vec<String> {
        found.iter().filter(|i| pick(i)).map(|i| format!("{} ({})", i.id, i.state)).collect()
    };
    let strangers = ids(&|i| !ctx.cluster.owns(&i.tags));
    if !strangers.is_empty() {
        return Err(Error::Conflict {
            resource: format!("instances {}", strangers.join(", ")),
            reason: format!(
                "carry Cluster={} but were not launched by rmpi-ec2 up; pick another cluster name",
                ctx.cluster
            ),
        });
    }
    let asleep = ids(&|i| !matches!(i.state.as_str(), "pending" | "running"));
    if !asleep.is_empty() {
        return Err(Error::Conflict {
            resource: format!("instances {} of cluster {}", asleep.join(", "), ctx.cluster),
            reason: "are not pending or running: start them, or wait for them to go, or run \
                     `rmpi-ec2 down` first"
                .into(),
        });
    }
    if found.len() > count {
        return Err(Error::Conflict {
            resource: format!("cluster {}", ctx.cluster),
            reason: format!(
                "already has {} instances, more than --count {count}; pass --count {} or run \
                 `rmpi-ec2 down` first",
                found.len(),
                found.len()
            ),
        });
    }
    if !found.is_empty() {
        (ctx.say)(&format!(
            "cluster {} already has {} of {count} instances",
            ctx.cluster,
            found.len()
        ));
    }
    Ok(found.len())
}

/// Brings the cluster up and returns its ready instances in hostfile order (none in a dry run).
pub fn up(ctx: &Ctx<'_>, spec: &UpSpec) -> Result<Vec<Instance>> {
    if spec.count == 0 {
        return Err(Error::Usage("--count must be at least 1".into()));
    }
    if spec.subnet.is_none() && !spec.fallback_subnets.is_empty() {
        return Err(Error::Usage("--fallback-subnet needs --subnet".into()));
    }
    let key = PublicKey::read(&spec.key_file)?;
    let have = existing(ctx, spec.count)?;
    let subnets: Vec<String> = spec.subnet.iter().chain(&spec.fallback_subnets).cloned().collect();
    let net = network::resolve(ctx.client, &subnets)?;
    let image = match &spec.image {
        Some(image) => image.clone(),
        None => {
            let image = image::default_image(ctx.client, &spec.instance_type)?;
            (ctx.say)(&format!(
                "image {image} (the newest Amazon Linux 2023 for {})",
                spec.instance_type
            ));
            image
        }
    };
    let key_name = keypair::ensure(ctx, &key)?;
    let placement_name = spec.placement_group.then(|| ctx.cluster.resource_name());
    let group = security_group::ensure(
        ctx,
        &net.vpc_id,
        spec.ssh_cidr.as_deref(),
        placement_name.as_deref(),
    )?;
    if spec.placement_group {
        placement::ensure(ctx)?;
    }
    if have < spec.count {
        let types: Vec<String> =
            std::iter::once(&spec.instance_type).chain(&spec.fallback_types).cloned().collect();
        let launch = LaunchSpec {
            count: spec.count - have,
            image: &image,
            types: &types,
            subnets: &net.subnets,
            key_name: &key_name,
            security_group: &group,
            placement: placement_name.as_deref(),
        };
        launch::launch(ctx, &launch).map_err(|e| match e {
            Error::Launch { cluster, count, attempts, note } => Error::Launch {
                note: format!(
                    "{note}; the key pair, security group{} are kept for the next try \
                     (`rmpi-ec2 down --cluster {cluster}` removes them)",
                    if spec.placement_group { " and placement group" } else { "" }
                ),
                cluster,
                count,
                attempts,
            },
            other => other,
        })?;
    }
    if ctx.dry_run {
        return Ok(Vec::new());
    }
    let wait = WaitSpec { count: spec.count, ..spec.wait.clone() };
    wait::wait(ctx.client, &ctx.cluster.selectors(), DEFAULT_ORDER_TAG, None, &wait, &mut |l| {
        (ctx.say)(l)
    })
}
