//! `rmpi-ec2 list`: the clusters `up` made, found by their `CreatedBy=rmpi-ec2` tag, with
//! their node count, instance types, states and age, and what is left of clusters whose
//! instances are gone.

use std::collections::BTreeMap;

use super::responses;
use super::{ask, keypair, up, CLUSTER_TAG, CREATED_BY, CREATED_BY_TAG};
use crate::error::Result;
use crate::query::{self, Client, Filter};
use crate::select;
use crate::time::Timestamp;

/// One cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Cluster name.
    pub name: String,
    /// Instances not terminated.
    pub nodes: usize,
    /// Instance type → count.
    pub types: BTreeMap<String, usize>,
    /// State → count.
    pub states: BTreeMap<String, usize>,
    /// Launch time of the oldest instance.
    pub launched: Option<Timestamp>,
    /// Other resources `up` made that still exist (`security group`, `key pair`).
    pub resources: Vec<String>,
}

fn summary<'a>(clusters: &'a mut BTreeMap<String, Summary>, name: &str) -> &'a mut Summary {
    clusters
        .entry(name.to_string())
        .or_insert_with(|| Summary { name: name.into(), ..Default::default() })
}

/// The clusters `up` made, by name.
pub fn list(client: &Client) -> Result<Vec<Summary>> {
    let made = [Filter { name: format!("tag:{CREATED_BY_TAG}"), values: vec![CREATED_BY.into()] }];
    let mut clusters: BTreeMap<String, Summary> = BTreeMap::new();
    let mut filters = made.to_vec();
    filters.push(Filter {
        name: "instance-state-name".into(),
        values: up::LIVE_STATES.iter().map(|s| s.to_string()).collect(),
    });
    let mut instances = client
        .describe_instances(&filters, None)
        .map_err(|e| e.during("listing rmpi-ec2 instances"))?;
    select::dedup(&mut instances);
    for i in instances.iter().filter(|i| {
        up::LIVE_STATES.contains(&i.state.as_str()) && i.tag(CREATED_BY_TAG) == Some(CREATED_BY)
    }) {
        let Some(name) = i.tag(CLUSTER_TAG) else { continue };
        let s = summary(&mut clusters, name);
        s.nodes += 1;
        *s.types.entry(i.instance_type.clone()).or_default() += 1;
        *s.states.entry(i.state.clone()).or_default() += 1;
        s.launched = match (s.launched, i.launch_time) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let groups = ask(
        client,
        "DescribeSecurityGroups",
        &query::filter_params(&made),
        responses::security_groups,
    )
    .map_err(|e| e.during("listing rmpi-ec2 security groups"))?;
    let groups = groups.into_iter().map(|g| (g.tags, "security group"));
    let keys = keypair::describe(client, &made)?.into_iter().map(|k| (k.tags, "key pair"));
    for (tags, kind) in groups.chain(keys) {
        let name = tags.iter().find(|(k, _)| k == CLUSTER_TAG).map(|(_, v)| v.clone());
        let made_by_us = tags.iter().any(|(k, v)| k == CREATED_BY_TAG && v == CREATED_BY);
        if let (Some(name), true) = (name, made_by_us) {
            summary(&mut clusters, &name).resources.push(kind.to_string());
        }
    }
    Ok(clusters.into_values().collect())
}

/// `3d 4h`, `2h 5m`, `12m`, `40s`.
pub fn age(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn counts(map: &BTreeMap<String, usize>) -> String {
    if map.is_empty() {
        return "-".into();
    }
    map.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ")
}

/// A table of `clusters`, ages counted up to `now` (seconds since the epoch).
pub fn render(clusters: &[Summary], now: i64) -> String {
    let mut rows =
        vec![["CLUSTER", "NODES", "TYPES", "STATES", "AGE", "ALSO"].map(String::from).to_vec()];
    for c in clusters {
        rows.push(vec![
            c.name.clone(),
            c.nodes.to_string(),
            counts(&c.types),
            counts(&c.states),
            c.launched.map_or("-".into(), |t| age(now - t.secs)),
            if c.resources.is_empty() { "-".into() } else { c.resources.join(", ") },
        ]);
    }
    let widths: Vec<usize> =
        (0..6).map(|col| rows.iter().map(|r| r[col].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(age(40), "40s");
        assert_eq!(age(12 * 60 + 5), "12m");
        assert_eq!(age(2 * 3600 + 5 * 60), "2h 5m");
        assert_eq!(age(3 * 86_400 + 4 * 3600 + 59), "3d 4h");
        assert_eq!(age(-5), "0s");
    }

    #[test]
    fn table() {
        let launched = Timestamp::parse("2026-01-01T00:00:00Z");
        let now = launched.unwrap().secs + 3 * 3600 + 60;
        let clusters = [
            Summary {
                name: "demo".into(),
                nodes: 3,
                types: BTreeMap::from([("c5.large".into(), 2), ("m5.large".into(), 1)]),
                states: BTreeMap::from([("running".into(), 3)]),
                launched,
                resources: vec!["security group".into(), "key pair".into()],
            },
            Summary {
                name: "old".into(),
                resources: vec!["key pair".into()],
                ..Default::default()
            },
        ];
        assert_eq!(
            render(&clusters, now),
            "CLUSTER  NODES  TYPES                   STATES     AGE    ALSO\n\
             demo     3      2 c5.large, 1 m5.large  3 running  3h 1m  security group, key pair\n\
             old      0      -                       -          -      key pair\n"
        );
    }
}
