//! The credential chain: where the AWS access keys come from.
//!
//! In order, the first source that has credentials wins:
//!
//! 1. `--profile NAME` given on the command line: that profile only (an error if it has none).
//! 2. The environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`.
//! 3. The shared files: profile `AWS_PROFILE` (or `default`) with `aws_access_key_id`,
//!    `aws_secret_access_key` and optional `aws_session_token`.
//! 4. The instance role, through the metadata service (IMDSv2), on an EC2 instance.
//!
//! Profiles that delegate to another mechanism (`role_arn`, `sso_*`, `credential_process`,
//! `web_identity_token_file`) are reported as unsupported rather than silently skipped.

use aws_credential_types::Credentials;

use crate::env::Env;
use crate::error::{Error, Result};
use crate::imds::Imds;
use crate::profile::{self, Profile};

/// Credentials and a description of where they came from (never the secret itself).
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The credentials (their `Debug` output hides the secret key and token).
    pub credentials: Credentials,
    /// E.g. `environment`, `profile dev (/home/u/.aws/credentials)`, `instance role web (IMDSv2)`.
    pub source: String,
}

/// Profile settings that name a credential mechanism this crate does not implement.
const DELEGATING_KEYS: [&str; 5] =
    ["role_arn", "credential_process", "sso_session", "sso_start_url", "web_identity_token_file"];

/// Runs the chain. `profile_flag` is `--profile`; `imds` is `None` when the metadata service is
/// disabled.
pub fn resolve(profile_flag: Option<&str>, env: &Env, imds: Option<&Imds>) -> Result<Resolved> {
    if let Some(name) = profile_flag {
        let profile = load_named(name, env)?;
        return from_profile(&profile)?.ok_or_else(|| no_keys(&profile));
    }
    let mut tried = Vec::new();

    match (env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")) {
        (Some(id), Some(secret)) => {
            let token = env.get("AWS_SESSION_TOKEN").map(str::to_string);
            let credentials = Credentials::new(id, secret, token, None, "environment");
            return Ok(Resolved { credentials, source: "environment".to_string() });
        }
        (Some(_), None) => tried.push("environment (AWS_SECRET_ACCESS_KEY is not set)".to_string()),
        (None, Some(_)) => tried.push("environment (AWS_ACCESS_KEY_ID is not set)".to_string()),
        (None, None) => tried.push("environment (AWS_ACCESS_KEY_ID is not set)".to_string()),
    }

    let name = profile::profile_name(None, env);
    let explicit = env.get("AWS_PROFILE").is_some();
    match profile::load(&name, env)? {
        Some(profile) => match from_profile(&profile)? {
            Some(resolved) => return Ok(resolved),
            None if explicit => return Err(no_keys(&profile)),
            None => tried.push(format!("profile `{name}` (no aws_access_key_id)")),
        },
        None if explicit => return Err(not_found(&name, env)),
        None => tried.push(format!(
            "profile `{name}` (not in {} or {})",
            env.config_file().display(),
            env.credentials_file().display()
        )),
    }

    match imds {
        None => tried.push("instance role (AWS_EC2_METADATA_DISABLED is set)".to_string()),
        Some(imds) => match imds.role_credentials() {
            Ok((role, credentials)) => {
                return Ok(Resolved {
                    credentials,
                    source: format!("instance role `{role}` (IMDSv2)"),
                });
            }
            Err(e) => tried.push(format!("instance role ({e})")),
        },
    }
    Err(Error::NoCredentials { tried: tried.join("; ") })
}

fn load_named(name: &str, env: &Env) -> Result<Profile> {
    profile::load(name, env)?.ok_or_else(|| not_found(name, env))
}

fn not_found(name: &str, env: &Env) -> Error {
    Error::ProfileNotFound {
        profile: name.to_string(),
        config: env.config_file(),
        credentials: env.credentials_file(),
    }
}

fn no_keys(profile: &Profile) -> Error {
    Error::ProfileUnusable {
        profile: profile.name.clone(),
        reason: "has no aws_access_key_id / aws_secret_access_key".to_string(),
    }
}

/// Static keys of a profile; `Ok(None)` when it has none; an error when it is incomplete or
/// relies on an unsupported mechanism.
fn from_profile(profile: &Profile) -> Result<Option<Resolved>> {
    let unusable =
        |reason: String| Error::ProfileUnusable { profile: profile.name.clone(), reason };
    match (profile.get("aws_access_key_id"), profile.get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => {
            let token = profile.get("aws_session_token").map(str::to_string);
            let credentials = Credentials::new(id, secret, token, None, "profile");
            let file = profile.origin("aws_access_key_id").map(|p| p.display().to_string());
            let source = format!("profile `{}` ({})", profile.name, file.unwrap_or_default());
            Ok(Some(Resolved { credentials, source }))
        }
        (Some(_), None) => Err(unusable("aws_access_key_id without aws_secret_access_key".into())),
        (None, Some(_)) => Err(unusable("aws_secret_access_key without aws_access_key_id".into())),
        (None, None) => match DELEGATING_KEYS.iter().find(|k| profile.get(k).is_some()) {
            Some(key) => Err(unusable(format!(
                "uses `{key}`, which rmpi-ec2 does not support; export temporary keys \
                 (e.g. `eval \"$(aws configure export-credentials --format env)\"`) or use a \
                 profile with static keys"
            ))),
            None => Ok(None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn files(dir: &Path, config: &str, credentials: &str) -> Vec<(String, String)> {
        std::fs::write(dir.join("config"), config).unwrap();
        std::fs::write(dir.join("credentials"), credentials).unwrap();
        vec![
            ("AWS_CONFIG_FILE".into(), dir.join("config").display().to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE".into(), dir.join("credentials").display().to_string()),
        ]
    }

    #[test]
    fn environment_wins_over_profile() {
        let dir = tempfile::tempdir().unwrap();
        let mut vars =
            files(dir.path(), "", "[default]\naws_access_key_id=P\naws_secret_access_key=PS\n");
        vars.push(("AWS_ACCESS_KEY_ID".into(), "E".into()));
        vars.push(("AWS_SECRET_ACCESS_KEY".into(), "ES".into()));
        vars.push(("AWS_SESSION_TOKEN".into(), "ET".into()));
        let r = resolve(None, &Env::from_pairs(vars), None).unwrap();
        assert_eq!(r.source, "environment");
        assert_eq!(r.credentials.access_key_id(), "E");
        assert_eq!(r.credentials.secret_access_key(), "ES");
        assert_eq!(r.credentials.session_token(), Some("ET"));
    }

    #[test]
    fn aws_profile_selects_profile_and_flag_overrides_environment() {
        let dir = tempfile::tempdir().unwrap();
        let mut vars = files(
            dir.path(),
            "[profile dev]\naws_access_key_id = C\naws_secret_access_key = CS\n",
            "[default]\naws_access_key_id=D\naws_secret_access_key=DS\naws_session_token=DT\n",
        );
        let r = resolve(None, &Env::from_pairs(vars.clone()), None).unwrap();
        assert_eq!(
            (r.credentials.access_key_id(), r.credentials.session_token()),
            ("D", Some("DT"))
        );
        assert!(r.source.starts_with("profile `default` ("), "{}", r.source);

        vars.push(("AWS_PROFILE".into(), "dev".into()));
        let r = resolve(None, &Env::from_pairs(vars.clone()), None).unwrap();
        assert_eq!(r.credentials.access_key_id(), "C");

        vars.push(("AWS_ACCESS_KEY_ID".into(), "E".into()));
        vars.push(("AWS_SECRET_ACCESS_KEY".into(), "ES".into()));
        let env = Env::from_pairs(vars);
        assert_eq!(resolve(None, &env, None).unwrap().credentials.access_key_id(), "E");
        assert_eq!(resolve(Some("default"), &env, None).unwrap().credentials.access_key_id(), "D");
    }

    #[test]
    fn missing_or_unusable_profiles_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut vars = files(
            dir.path(),
            "[profile sso]\nsso_session = corp\nregion = eu-west-1\n",
            "[half]\naws_access_key_id = X\n",
        );
        let env = Env::from_pairs(vars.clone());
        let err = resolve(Some("nope"), &env, None).unwrap_err();
        assert!(matches!(err, Error::ProfileNotFound { .. }), "{err}");
        let err = resolve(Some("sso"), &env, None).unwrap_err().to_string();
        assert!(err.contains("uses `sso_session`"), "{err}");
        let err = resolve(Some("half"), &env, None).unwrap_err().to_string();
        assert!(err.contains("without aws_secret_access_key"), "{err}");
        vars.push(("AWS_PROFILE".into(), "nope".into()));
        let err = resolve(None, &Env::from_pairs(vars), None).unwrap_err();
        assert!(matches!(err, Error::ProfileNotFound { .. }), "{err}");
    }

    #[test]
    fn nothing_found_lists_what_was_tried() {
        let dir = tempfile::tempdir().unwrap();
        let vars = files(dir.path(), "", "");
        let err = resolve(None, &Env::from_pairs(vars), None).unwrap_err().to_string();
        assert!(err.starts_with("no AWS credentials found; tried: environment"), "{err}");
        assert!(err.contains("profile `default`"), "{err}");
        assert!(err.contains("AWS_EC2_METADATA_DISABLED"), "{err}");
    }
}
