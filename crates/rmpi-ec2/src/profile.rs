//! The AWS shared configuration files (`~/.aws/config` and `~/.aws/credentials`).
//!
//! Both are INI-like: `[section]` headers, `key = value` lines, `#` and `;` comments. In the config
//! file a named profile's section is `[profile NAME]` (the default one is `[default]`); in the
//! credentials file it is `[NAME]`. Indented lines continue a nested setting (`s3 =` blocks) and
//! are skipped: nothing here needs them. Keys from the credentials file win over the config file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::env::Env;
use crate::error::{Error, Result};

/// The settings of one profile, merged from both files.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// Profile name.
    pub name: String,
    settings: HashMap<String, String>,
    /// Where each setting came from (for messages).
    origin: HashMap<String, PathBuf>,
}

impl std::fmt::Debug for Profile {
    // Settings include secret keys: show names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<&String> = self.settings.keys().collect();
        keys.sort();
        f.debug_struct("Profile").field("name", &self.name).field("keys", &keys).finish()
    }
}

impl Profile {
    /// A setting (keys are case-insensitive), if present and not empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings.get(&key.to_ascii_lowercase()).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// The file a setting was read from.
    pub fn origin(&self, key: &str) -> Option<&Path> {
        self.origin.get(&key.to_ascii_lowercase()).map(PathBuf::as_path)
    }
}

/// The profile name to use: `explicit` (from `--profile`), else `AWS_PROFILE`, else `default`.
pub fn profile_name(explicit: Option<&str>, env: &Env) -> String {
    explicit.or_else(|| env.get("AWS_PROFILE")).unwrap_or("default").to_string()
}

/// Loads profile `name` from the shared files named by `env`.
///
/// Returns `Ok(None)` when neither file has the profile (missing files are not an error).
pub fn load(name: &str, env: &Env) -> Result<Option<Profile>> {
    let mut profile = Profile { name: name.to_string(), ..Profile::default() };
    let mut found = false;
    // Config first, so that the credentials file overrides it.
    for (path, is_config) in [(env.config_file(), true), (env.credentials_file(), false)] {
        let Some(text) = read_optional(&path)? else { continue };
        let sections = parse(&text, &path)?;
        let wanted = section_name(name, is_config);
        for (section, settings) in sections {
            if section != wanted
                && !(is_config && name == "default" && section == "profile default")
            {
                continue;
            }
            found = true;
            for (key, value) in settings {
                profile.origin.insert(key.clone(), path.clone());
                profile.settings.insert(key, value);
            }
        }
    }
    Ok(found.then_some(profile))
}

fn section_name(profile: &str, is_config: bool) -> String {
    if is_config && profile != "default" {
        format!("profile {profile}")
    } else {
        profile.to_string()
    }
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io { path: path.to_path_buf(), source }),
    }
}

type Sections = Vec<(String, Vec<(String, String)>)>;

/// Parses one shared file into its sections, in file order.
pub fn parse(text: &str, path: &Path) -> Result<Sections> {
    let mut sections: Sections = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let syntax = |reason: &str| Error::ProfileSyntax {
            path: path.to_path_buf(),
            line: line_no,
            reason: reason.to_string(),
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if raw.starts_with([' ', '\t']) {
            // Continuation of a nested setting (e.g. `s3 =` followed by indented lines).
            if sections.is_empty() {
                return Err(syntax("indented line outside any section"));
            }
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let Some(name) = rest.split(']').next().filter(|_| rest.contains(']')) else {
                return Err(syntax("section header without `]`"));
            };
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            sections.push((name, Vec::new()));
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            return Err(syntax("expected `key = value`"));
        };
        let Some((_, settings)) = sections.last_mut() else {
            return Err(syntax("setting outside any [section]"));
        };
        let value = strip_inline_comment(value.trim());
        settings.push((key.trim().to_ascii_lowercase(), value.to_string()));
    }
    Ok(sections)
}

/// Drops a ` #...` or ` ;...` comment that follows a value (the AWS CLI's rule: the comment
/// character must be preceded by whitespace, so `abc#def` keeps its `#`).
fn strip_inline_comment(value: &str) -> &str {
    let bytes = value.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if (b == b'#' || b == b';') && i > 0 && bytes[i - 1].is_ascii_whitespace() {
            return value[..i].trim_end();
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with(dir: &Path) -> Env {
        Env::from_pairs([
            ("AWS_CONFIG_FILE", dir.join("config").display().to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", dir.join("credentials").display().to_string()),
        ])
    }

    #[test]
    fn merges_config_and_credentials_with_credentials_winning() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config"),
            "[default]\nregion = us-east-1\n\n[profile dev]\nregion = eu-west-3 # Paris\n\
             s3 =\n  max_concurrent_requests = 4\naws_access_key_id = FROMCONFIG\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("credentials"),
            "; comment\n[dev]\naws_access_key_id = AKIDDEV\naws_secret_access_key = s#cret\n",
        )
        .unwrap();
        let env = env_with(dir.path());
        let dev = load("dev", &env).unwrap().unwrap();
        assert_eq!(dev.get("region"), Some("eu-west-3"));
        assert_eq!(dev.get("AWS_ACCESS_KEY_ID"), Some("AKIDDEV"));
        assert_eq!(dev.get("aws_secret_access_key"), Some("s#cret"));
        assert_eq!(dev.origin("aws_access_key_id"), Some(dir.path().join("credentials").as_path()));
        assert_eq!(dev.get("max_concurrent_requests"), None);
        let default = load("default", &env).unwrap().unwrap();
        assert_eq!(default.get("region"), Some("us-east-1"));
        assert_eq!(load("absent", &env).unwrap(), None);
    }

    #[test]
    fn missing_files_mean_no_profile() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load("default", &env_with(dir.path())).unwrap(), None);
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let path = Path::new("/x/config");
        let err = parse("[default]\nregion us-east-1\n", path).unwrap_err();
        assert_eq!(err.to_string(), "/x/config:2: expected `key = value`");
        let err = parse("region = x\n", path).unwrap_err();
        assert_eq!(err.to_string(), "/x/config:1: setting outside any [section]");
        let err = parse("[default\n", path).unwrap_err();
        assert_eq!(err.to_string(), "/x/config:1: section header without `]`");
    }

    #[test]
    fn profile_name_precedence() {
        let env = Env::from_pairs([("AWS_PROFILE", "fromenv")]);
        assert_eq!(profile_name(Some("cli"), &env), "cli");
        assert_eq!(profile_name(None, &env), "fromenv");
        assert_eq!(profile_name(None, &Env::default()), "default");
    }
}
