//! A snapshot of the process environment.
//!
//! The credential and region chains read environment variables through [`Env`] instead of
//! `std::env`, so a caller (or a test) can hand them a controlled environment without mutating
//! the process's own.

use std::collections::HashMap;
use std::path::PathBuf;

/// Environment variables, captured once.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl std::fmt::Debug for Env {
    // Values may be secrets (AWS_SECRET_ACCESS_KEY): show names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("Env").field("names", &names).finish()
    }
}

impl Env {
    /// Captures the current process environment (variables that are not valid UTF-8 are skipped).
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// Builds an environment from explicit pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// The value of `name`, if set and not empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    /// The home directory (`HOME`), used to find `~/.aws`.
    pub fn home(&self) -> Option<PathBuf> {
        self.get("HOME").map(PathBuf::from)
    }

    /// The shared config file: `AWS_CONFIG_FILE` or `~/.aws/config`.
    pub fn config_file(&self) -> PathBuf {
        self.aws_file("AWS_CONFIG_FILE", "config")
    }

    /// The shared credentials file: `AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`.
    pub fn credentials_file(&self) -> PathBuf {
        self.aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials")
    }

    fn aws_file(&self, var: &str, name: &str) -> PathBuf {
        match self.get(var) {
            Some(path) => self.expand_home(path),
            None => self.home().unwrap_or_default().join(".aws").join(name),
        }
    }

    fn expand_home(&self, path: &str) -> PathBuf {
        match (path.strip_prefix("~/"), self.home()) {
            (Some(rest), Some(home)) => home.join(rest),
            _ => PathBuf::from(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_unset() {
        let env = Env::from_pairs([("AWS_REGION", " "), ("AWS_PROFILE", "dev")]);
        assert_eq!(env.get("AWS_REGION"), None);
        assert_eq!(env.get("AWS_PROFILE"), Some("dev"));
    }

    #[test]
    fn shared_files_default_under_home_and_expand_tilde() {
        let env = Env::from_pairs([("HOME", "/h"), ("AWS_CONFIG_FILE", "~/cfg")]);
        assert_eq!(env.config_file(), PathBuf::from("/h/cfg"));
        assert_eq!(env.credentials_file(), PathBuf::from("/h/.aws/credentials"));
    }

    #[test]
    fn debug_never_shows_values() {
        let env = Env::from_pairs([("AWS_SECRET_ACCESS_KEY", "very-secret")]);
        let shown = format!("{env:?}");
        assert!(shown.contains("AWS_SECRET_ACCESS_KEY"));
        assert!(!shown.contains("very-secret"));
    }
}
