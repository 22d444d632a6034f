//! Which instances are selected (tag selectors, state) and in what order they are listed.

use std::cmp::Ordering;

use crate::error::{Error, Result};
use crate::model::Instance;
use crate::query::Filter;

/// The default name of the tag that fixes an instance's position in the hostfile.
pub const DEFAULT_ORDER_TAG: &str = "rmpi-rank";

/// One `--tag` selector: `Key=Value` (the tag must have that value) or `Key` (it must exist).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagSelector {
    /// Tag key.
    pub key: String,
    /// Required value; `None` means any value.
    pub value: Option<String>,
}

impl std::str::FromStr for TagSelector {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let invalid =
            |reason: &str| Error::InvalidTag { selector: text.to_string(), reason: reason.into() };
        let (key, value) = match text.split_once('=') {
            Some((key, value)) => (key, Some(value.to_string())),
            None => (text, None),
        };
        if key.trim().is_empty() {
            return Err(invalid("the tag key is empty (use Key=Value or Key)"));
        }
        if key.len() > 128 {
            return Err(invalid("tag keys are at most 128 characters"));
        }
        if value.as_ref().is_some_and(|v| v.len() > 256) {
            return Err(invalid("tag values are at most 256 characters"));
        }
        Ok(Self { key: key.to_string(), value })
    }
}

impl std::fmt::Display for TagSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}={}", self.key, value),
            None => write!(f, "{}", self.key),
        }
    }
}

/// Describes a selection for messages: `tags Cluster=demo, Role`.
pub fn describe(selectors: &[TagSelector]) -> String {
    let list: Vec<String> = selectors.iter().map(ToString::to_string).collect();
    format!("tags {}", list.join(", "))
}

/// The DescribeInstances filters for `selectors` (all must match) and instance `states`.
pub fn filters(selectors: &[TagSelector], states: &[&str]) -> Vec<Filter> {
    let mut out: Vec<Filter> = selectors
        .iter()
        .map(|s| match &s.value {
            Some(value) => Filter { name: format!("tag:{}", s.key), values: vec![value.clone()] },
            None => Filter { name: "tag-key".into(), values: vec![s.key.clone()] },
        })
        .collect();
    out.push(Filter {
        name: "instance-state-name".into(),
        values: states.iter().map(|s| s.to_string()).collect(),
    });
    out
}

/// Whether `instance` satisfies every selector and is in one of `states`. Applied to EC2's
/// answer as well, so that an endpoint that ignores a filter cannot widen the selection.
pub fn matches(instance: &Instance, selectors: &[TagSelector], states: &[&str]) -> bool {
    states.contains(&instance.state.as_str())
        && selectors.iter().all(|s| match (instance.tag(&s.key), &s.value) {
            (Some(actual), Some(wanted)) => actual == wanted,
            (Some(_), None) => true,
            (None, _) => false,
        })
}

/// Sorts instances into their stable hostfile order: instances with a numeric `order_tag` first,
/// by that number; then those with a non-numeric value, by the value; then the rest. Ties (and
/// the rest) are broken by launch time (unknown last), then instance id.
pub fn sort(instances: &mut [Instance], order_tag: &str) {
    instances.sort_by(|a, b| compare(a, b, order_tag));
}

/// Removes repeated instance ids (keeping the first), e.g. when an instance moved between
/// pages while they were being read.
pub fn dedup(instances: &mut Vec<Instance>) {
    let mut seen = std::collections::HashSet::new();
    instances.retain(|i| seen.insert(i.id.clone()));
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum RankKey<'a> {
    Number(i128),
    Text(&'a str),
    Absent,
}

fn rank_key<'a>(instance: &'a Instance, order_tag: &str) -> RankKey<'a> {
    match instance.tag(order_tag).map(str::trim) {
        Some(v) => v.parse::<i128>().map_or(RankKey::Text(v), RankKey::Number),
        None => RankKey::Absent,
    }
}

fn compare(a: &Instance, b: &Instance, order_tag: &str) -> Ordering {
    let launch = |i: &Instance| (i.launch_time.is_none(), i.launch_time);
    rank_key(a, order_tag)
        .cmp(&rank_key(b, order_tag))
        .then_with(|| launch(a).cmp(&launch(b)))
        .then_with(|| a.id.cmp(&b.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn instance(id: &str, launched: Option<&str>, tags: &[(&str, &str)]) -> Instance {
        Instance {
            id: id.into(),
            instance_type: "t3.micro".into(),
            state: "running".into(),
            private_ip: None,
            public_ip: None,
            private_dns: None,
            public_dns: None,
            ipv6: None,
            launch_time: launched.and_then(Timestamp::parse),
            tags: tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn parses_selectors() {
        let s: TagSelector = "Cluster=demo".parse().unwrap();
        assert_eq!(s, TagSelector { key: "Cluster".into(), value: Some("demo".into()) });
        let s: TagSelector = "Role".parse().unwrap();
        assert_eq!(s.value, None);
        let s: TagSelector = "Expr=a=b".parse().unwrap();
        assert_eq!(s.value.as_deref(), Some("a=b"));
        let s: TagSelector = "Empty=".parse().unwrap();
        assert_eq!(s.value.as_deref(), Some(""));
        assert!("=x".parse::<TagSelector>().is_err());
        assert!("".parse::<TagSelector>().is_err());
    }

    #[test]
    fn builds_filters() {
        let selectors: Vec<TagSelector> =
            vec!["Cluster=demo".parse().unwrap(), "Role".parse().unwrap()];
        let f = filters(&selectors, &["running"]);
        assert_eq!(f[0], Filter { name: "tag:Cluster".into(), values: vec!["demo".into()] });
        assert_eq!(f[1], Filter { name: "tag-key".into(), values: vec!["Role".into()] });
        assert_eq!(
            f[2],
            Filter { name: "instance-state-name".into(), values: vec!["running".into()] }
        );
        assert_eq!(describe(&selectors), "tags Cluster=demo, Role");
    }

    #[test]
    fn matching_requires_every_selector_and_state() {
        let selectors: Vec<TagSelector> =
            vec!["Cluster=demo".parse().unwrap(), "Role".parse().unwrap()];
        let good = instance("i-1", None, &[("Cluster", "demo"), ("Role", "")]);
        assert!(matches(&good, &selectors, &["running"]));
        assert!(!matches(&good, &selectors, &["pending"]));
        assert!(!matches(&instance("i-2", None, &[("Cluster", "demo")]), &selectors, &["running"]));
        let other = instance("i-3", None, &[("Cluster", "prod"), ("Role", "x")]);
        assert!(!matches(&other, &selectors, &["running"]));
    }

    #[test]
    fn order_is_rank_tag_then_launch_time_then_id() {
        let mut list = vec![
            instance("i-9", Some("2026-01-01T00:00:03Z"), &[]),
            instance("i-8", None, &[]),
            instance("i-7", Some("2026-01-01T00:00:09Z"), &[("rmpi-rank", "10")]),
            instance("i-6", Some("2026-01-01T00:00:09Z"), &[("rmpi-rank", "2")]),
            instance("i-5", Some("2026-01-01T00:00:01Z"), &[("rmpi-rank", "head")]),
            instance("i-4", Some("2026-01-01T00:00:03Z"), &[]),
            instance("i-3", Some("2026-01-01T00:00:02Z"), &[]),
            instance("i-2", Some("2026-01-01T00:00:05Z"), &[("rmpi-rank", "2")]),
        ];
        sort(&mut list, DEFAULT_ORDER_TAG);
        let ids: Vec<&str> = list.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["i-2", "i-6", "i-7", "i-5", "i-3", "i-4", "i-9", "i-8"]);
        // A different order tag: everything falls back to launch time then id.
        sort(&mut list, "Other");
        let ids: Vec<&str> = list.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["i-5", "i-3", "i-4", "i-9", "i-2", "i-6", "i-7", "i-8"]);
    }

    #[test]
    fn dedup_keeps_first() {
        let mut list = vec![
            instance("i-1", None, &[]),
            instance("i-2", None, &[]),
            instance("i-1", None, &[]),
        ];
        dedup(&mut list);
        assert_eq!(list.len(), 2);
    }
}
