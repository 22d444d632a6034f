//! The cluster's key pair: the user's public key, imported once.
//!
//! `up` reuses a key pair that already holds the same public key (same fingerprint): the one it
//! imported for this cluster before, or one the user imported themselves (never deleted by
//! `down`). Key pairs `up` made for *other* clusters are not borrowed, so that each cluster's
//! `down` stays independent. Otherwise it imports the key as `rmpi-NAME`, tagged.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::responses::{self, KeyPairInfo};
use super::sshkey::PublicKey;
use super::{ask, params, Ctx, CREATED_BY, CREATED_BY_TAG};
use crate::error::{Error, Result};
use crate::query::{self, Client};

/// Every key pair of the account in the region (or those matching `filters`).
pub fn describe(client: &Client, filters: &[query::Filter]) -> Result<Vec<KeyPairInfo>> {
    ask(client, "DescribeKeyPairs", &query::filter_params(filters), responses::key_pairs)
        .map_err(|e| e.during("listing key pairs"))
}

/// Which existing key pair to use for `key`, if any: this cluster's first, then one the user
/// made. `Err` when the name `rmpi-NAME` is taken by a different key.
pub fn choose<'a>(
    ctx: &Ctx<'_>,
    existing: &'a [KeyPairInfo],
    key: &PublicKey,
) -> Result<Option<&'a KeyPairInfo>> {
    let same_key = |k: &&KeyPairInfo| key.matches(&k.fingerprint);
    let made_by_rmpi =
        |k: &KeyPairInfo| k.tags.iter().any(|(n, v)| n == CREATED_BY_TAG && v == CREATED_BY);
    if let Some(ours) = existing.iter().filter(same_key).find(|k| ctx.cluster.owns(&k.tags)) {
        return Ok(Some(ours));
    }
    if let Some(users) = existing.iter().filter(same_key).find(|k| !made_by_rmpi(k)) {
        return Ok(Some(users));
    }
    let name = ctx.cluster.resource_name();
    if let Some(taken) = existing.iter().find(|k| k.name == name) {
        let whose = if ctx.cluster.owns(&taken.tags) {
            format!(
                "was imported for cluster {} from another public key; run `rmpi-ec2 down \
                 --cluster {}` first, or pass --key-file with that key",
                ctx.cluster, ctx.cluster
            )
        } else {
            "exists and holds another public key; it was not made by rmpi-ec2 up for this \
             cluster, so it is left alone: delete or rename it, or pick another cluster name"
                .to_string()
        };
        return Err(Error::Conflict {
            resource: format!("key pair {name} ({}, fingerprint {})", taken.id, taken.fingerprint),
            reason: whose,
        });
    }
    Ok(None)
}

/// The name of the key pair holding `key`, importing it when no usable one exists.
pub fn ensure(ctx: &Ctx<'_>, key: &PublicKey) -> Result<String> {
    let existing = describe(ctx.client, &[])?;
    if let Some(found) = choose(ctx, &existing, key)? {
        (ctx.say)(&format!(
            "key pair {} ({}) already holds this public key: reusing it",
            found.name, found.id
        ));
        return Ok(found.name.clone());
    }
    let name = ctx.cluster.resource_name();
    if ctx.skip(&format!("import the public key as key pair {name}")) {
        return Ok(name);
    }
    // A blob parameter: base64 in the Query API.
    let material = STANDARD.encode(&key.material);
    let mut p = params(&[("KeyName", &name), ("PublicKeyMaterial", &material)]);
    p.extend(ctx.cluster.tag_specification(1, "key-pair"));
    let made = ask(ctx.client, "ImportKeyPair", &p, responses::imported_key_pair)
        .map_err(|e| e.during(format!("importing key pair {name}")))?;
    (ctx.say)(&format!("imported key pair {name} ({})", made.id));
    Ok(name)
}

/// The key pairs `up` made for the cluster.
pub fn owned(ctx: &Ctx<'_>) -> Result<Vec<KeyPairInfo>> {
    let found = describe(ctx.client, &ctx.cluster.owned_filters())?;
    Ok(found.into_iter().filter(|k| ctx.cluster.owns(&k.tags)).collect())
}

/// Deletes key pair `key` (by name: unique in a region, and what every EC2 implementation
/// accepts).
pub fn delete(ctx: &Ctx<'_>, key: &KeyPairInfo) -> Result<()> {
    let what = format!("delete key pair {} ({})", key.name, key.id);
    if ctx.skip(&what) {
        return Ok(());
    }
    let p = params(&[("KeyName", &key.name)]);
    ctx.client
        .call("DeleteKeyPair", &p)
        .map_err(|e| e.during(format!("deleting key pair {}", key.name)))?;
    (ctx.say)(&format!("deleted key pair {} ({})", key.name, key.id));
    Ok(())
}
