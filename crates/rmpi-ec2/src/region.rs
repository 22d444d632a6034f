//! The region chain: `--region`, then `AWS_REGION`, then `AWS_DEFAULT_REGION`, then the profile's
//! `region` setting, then the metadata service (on an EC2 instance).

use crate::env::Env;
use crate::error::{Error, Result};
use crate::imds::Imds;
use crate::profile;

/// A region and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// E.g. `eu-west-1`.
    pub region: String,
    /// E.g. `--region`, `AWS_REGION`, `profile default`, `IMDSv2`.
    pub source: String,
}

/// Runs the chain. `profile_flag` is `--profile` (else `AWS_PROFILE`, else `default`).
pub fn resolve(
    flag: Option<&str>,
    profile_flag: Option<&str>,
    env: &Env,
    imds: Option<&Imds>,
) -> Result<Resolved> {
    let found = |region: &str, source: String| Resolved { region: region.to_string(), source };
    if let Some(region) = flag.filter(|r| !r.trim().is_empty()) {
        return Ok(found(region, "--region".into()));
    }
    for var in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if let Some(region) = env.get(var) {
            return Ok(found(region, var.into()));
        }
    }
    let name = profile::profile_name(profile_flag, env);
    let mut tried = vec!["--region".to_string(), "AWS_REGION".into(), "AWS_DEFAULT_REGION".into()];
    if let Some(region) = profile::load(&name, env)?.as_ref().and_then(|p| p.get("region")) {
        return Ok(found(region, format!("profile `{name}`")));
    }
    tried.push(format!("profile `{name}` in {}", env.config_file().display()));
    match imds {
        None => tried.push("instance metadata (AWS_EC2_METADATA_DISABLED is set)".into()),
        Some(imds) => match imds.region() {
            Ok(region) => return Ok(found(&region, "instance metadata (IMDSv2)".into())),
            Err(e) => tried.push(format!("instance metadata ({e})")),
        },
    }
    Err(Error::NoRegion { tried: tried.join(", ") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            "[default]\nregion = ap-south-1\n[profile x]\nregion = sa-east-1\n",
        )
        .unwrap();
        let base = vec![
            ("AWS_CONFIG_FILE".to_string(), config.display().to_string()),
            (
                "AWS_SHARED_CREDENTIALS_FILE".to_string(),
                dir.path().join("none").display().to_string(),
            ),
        ];
        let with = |extra: &[(&str, &str)]| {
            let mut vars = base.clone();
            vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            Env::from_pairs(vars)
        };
        let env = with(&[("AWS_REGION", "eu-west-1"), ("AWS_DEFAULT_REGION", "us-west-2")]);
        assert_eq!(resolve(Some("us-east-2"), None, &env, None).unwrap().region, "us-east-2");
        assert_eq!(resolve(None, None, &env, None).unwrap().source, "AWS_REGION");
        let env = with(&[("AWS_DEFAULT_REGION", "us-west-2")]);
        assert_eq!(resolve(None, None, &env, None).unwrap().region, "us-west-2");
        let env = with(&[]);
        assert_eq!(resolve(None, None, &env, None).unwrap().region, "ap-south-1");
        assert_eq!(resolve(None, Some("x"), &env, None).unwrap().region, "sa-east-1");
        let env = with(&[("AWS_PROFILE", "x")]);
        assert_eq!(resolve(None, None, &env, None).unwrap().source, "profile `x`");
    }

    #[test]
    fn no_region_lists_sources() {
        let dir = tempfile::tempdir().unwrap();
        let env = Env::from_pairs([("HOME", dir.path().display().to_string())]);
        let err = resolve(None, None, &env, None).unwrap_err().to_string();
        assert!(err.starts_with("no AWS region; tried: --region, AWS_REGION"), "{err}");
        assert!(err.contains("AWS_EC2_METADATA_DISABLED"), "{err}");
    }
}
