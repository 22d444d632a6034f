//! The default image when `up` is given no `--image`: the newest Amazon Linux 2023 image
//! published by Amazon for the instance type's architecture.

use super::responses;
use super::{ask, params};
use crate::error::{Error, Result};
use crate::query::Client;

/// The architecture (`x86_64`, `arm64`) of `instance_type`.
pub fn architecture(client: &Client, instance_type: &str) -> Result<String> {
    let p = params(&[("InstanceType.1", instance_type)]);
    let types = ask(client, "DescribeInstanceTypes", &p, responses::architectures)
        .map_err(|e| e.during(format!("looking up instance type {instance_type}")))?;
    let archs = types
        .into_iter()
        .find(|(t, _)| t == instance_type)
        .map(|(_, a)| a)
        .ok_or_else(|| Error::UnknownInstanceType(instance_type.into()))?;
    // Prefer the 64-bit architectures images are published for.
    ["x86_64", "arm64"]
        .into_iter()
        .find(|a| archs.iter().any(|x| x == a))
        .map(str::to_string)
        .ok_or_else(|| Error::Conflict {
            resource: format!("instance type {instance_type}"),
            reason: format!(
                "supports no x86_64 or arm64 images ({}); pass --image",
                archs.join(", ")
            ),
        })
}

/// The id of the newest available Amazon Linux 2023 image for `instance_type` (ties, e.g. the
/// same release for several kernels, go to the greatest name).
pub fn default_image(client: &Client, instance_type: &str) -> Result<String> {
    let arch = architecture(client, instance_type)?;
    let pattern = format!("al2023-ami-2023.*-{arch}");
    let p = params(&[
        ("Owner.1", "amazon"),
        ("Filter.1.Name", "name"),
        ("Filter.1.Value.1", &pattern),
        ("Filter.2.Name", "state"),
        ("Filter.2.Value.1", "available"),
        ("Filter.3.Name", "architecture"),
        ("Filter.3.Value.1", &arch),
    ]);
    let images = ask(client, "DescribeImages", &p, responses::images)
        .map_err(|e| e.during(format!("looking up the newest {pattern} image")))?;
    images
        .into_iter()
        .filter(|i| i.architecture == arch && i.name.starts_with("al2023-ami-2023."))
        .max_by(|a, b| (&a.creation_date, &a.name).cmp(&(&b.creation_date, &b.name)))
        .map(|i| i.id)
        .ok_or_else(|| Error::Conflict {
            resource: format!("region {}", client.region()),
            reason: format!(
                "has no Amazon Linux 2023 image ({pattern}) owned by amazon: pass --image AMI"
            ),
        })
}
