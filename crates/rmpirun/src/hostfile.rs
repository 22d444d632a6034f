//! Hostfile and `-H` host list parsing.
//!
//! Accepted per line (after stripping `#` comments and surrounding blanks; blank lines are skipped):
//!
//! * Open MPI: `host slots=N max_slots=M` (also `max-slots=M`);
//! * MPICH / Hydra: `host:N`;
//! * a bare `host` (one slot);
//! * `user@host`, IPv6 addresses in brackets (`[fe80::1]`, `[fe80::1]:4`), a bare IPv6 address;
//! * rmpi extensions: `port=P` (SSH port of that host) and `user=U`.
//!
//! A host listed more than once (same user, name and port) has its slots added up. Any other
//! content is an error that names the file and the line.

use std::fmt;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

/// One machine to start ranks on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// Host name or address as written (IPv6 without brackets).
    pub name: String,
    /// Login name for SSH, if given (`user@host` or `user=`).
    pub user: Option<String>,
    /// SSH port, if given (`port=`).
    pub port: Option<u16>,
    /// Number of slots (ranks placed here before oversubscribing).
    pub slots: usize,
    /// Hard limit on ranks placed here, even when oversubscribing.
    pub max_slots: Option<usize>,
}

impl HostEntry {
    /// Whether this entry names the launching machine itself in a way that needs no SSH
    /// (`localhost`, `127.0.0.1`, `::1`, without a user or port).
    pub fn is_local(&self) -> bool {
        self.user.is_none()
            && self.port.is_none()
            && matches!(self.name.as_str(), "localhost" | "127.0.0.1" | "::1")
    }

    /// The name used in messages: `user@host:port` style, IPv6 in brackets.
    pub fn display_name(&self) -> String {
        let host =
            if self.name.contains(':') { format!("[{}]", self.name) } else { self.name.clone() };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }

    fn same_target(&self, other: &HostEntry) -> bool {
        self.name == other.name && self.user == other.user && self.port == other.port
    }
}

/// Where a bad host specification came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A hostfile line.
    File { path: PathBuf, line: usize },
    /// The `-H` command line option.
    CommandLine,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{}:{}", path.display(), line),
            Origin::CommandLine => write!(f, "-H"),
        }
    }
}

/// A hostfile or host list error.
#[derive(Debug, thiserror::Error)]
pub enum HostfileError {
    /// The hostfile could not be read.
    #[error("cannot read hostfile {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// A line (or `-H` item) is malformed.
    #[error("{origin}: {reason}: `{text}`")]
    Syntax { origin: Origin, text: String, reason: String },
    /// The file holds no host at all.
    #[error("hostfile {path} lists no host")]
    Empty { path: PathBuf },
}

/// Reads and parses a hostfile.
pub fn read_hostfile(path: &Path) -> Result<Vec<HostEntry>, HostfileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| HostfileError::Read { path: path.to_path_buf(), source })?;
    let hosts = parse_hostfile(&text, path)?;
    if hosts.is_empty() {
        return Err(HostfileError::Empty { path: path.to_path_buf() });
    }
    Ok(hosts)
}

/// Parses hostfile text; `path` is only used in error messages.
pub fn parse_hostfile(text: &str, path: &Path) -> Result<Vec<HostEntry>, HostfileError> {
    let mut hosts: Vec<HostEntry> = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = match raw.find('#') {
            Some(pos) => &raw[..pos],
            None => raw,
        }
        .trim();
        if line.is_empty() {
            continue;
        }
        let origin = Origin::File { path: path.to_path_buf(), line: idx + 1 };
        let entry = parse_line(line, &origin)?;
        merge(&mut hosts, entry);
    }
    Ok(hosts)
}

/// Parses the argument of `-H`: comma-separated `host` or `host:N` items (same syntax as a
/// hostfile line, without the `key=value` words).
pub fn parse_host_list(list: &str) -> Result<Vec<HostEntry>, HostfileError> {
    let mut hosts = Vec::new();
    for item in list.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(HostfileError::Syntax {
                origin: Origin::CommandLine,
                text: list.to_string(),
                reason: "empty host name".into(),
            });
        }
        let entry = parse_line(item, &Origin::CommandLine)?;
        merge(&mut hosts, entry);
    }
    Ok(hosts)
}

fn merge(hosts: &mut Vec<HostEntry>, entry: HostEntry) {
    if let Some(existing) = hosts.iter_mut().find(|h| h.same_target(&entry)) {
        existing.slots += entry.slots;
        existing.max_slots = match (existing.max_slots, entry.max_slots) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    } else {
        hosts.push(entry);
    }
}

fn parse_line(line: &str, origin: &Origin) -> Result<HostEntry, HostfileError> {
    let err = |reason: &str| HostfileError::Syntax {
        origin: origin.clone(),
        text: line.to_string(),
        reason: reason.to_string(),
    };
    let mut words = line.split_whitespace();
    let spec = words.next().ok_or_else(|| err("empty line"))?;
    let (user, rest) = match spec.split_once('@') {
        Some((u, r)) => {
            check_user(u).map_err(|r| err(&r))?;
            (Some(u.to_string()), r)
        }
        None => (None, spec),
    };
    let (name, count) = split_host_count(rest).map_err(|r| err(&r))?;
    check_host(&name).map_err(|r| err(&r))?;
    let mut entry =
        HostEntry { name, user, port: None, slots: count.unwrap_or(1), max_slots: None };
    let mut seen_slots = count.is_some();
    for word in words {
        let (key, value) = word
            .split_once('=')
            .ok_or_else(|| err(&format!("expected key=value, found `{word}`")))?;
        match key {
            "slots" | "cpu" => {
                if seen_slots {
                    return Err(err("slot count given twice"));
                }
                entry.slots = parse_count(value).map_err(|r| err(&format!("slots: {r}")))?;
                seen_slots = true;
            }
            "max_slots" | "max-slots" => {
                entry.max_slots =
                    Some(parse_count(value).map_err(|r| err(&format!("max_slots: {r}")))?);
            }
            "port" => {
                let port: u16 = value
                    .parse()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| err(&format!("port must be 1..65535, found `{value}`")))?;
                entry.port = Some(port);
            }
            "user" => {
                if entry.user.is_some() {
                    return Err(err("user given twice"));
                }
                check_user(value).map_err(|r| err(&r))?;
                entry.user = Some(value.to_string());
            }
            _ => return Err(err(&format!("unknown keyword `{key}`"))),
        }
    }
    if let Some(max) = entry.max_slots {
        if max < entry.slots {
            return Err(err(&format!("max_slots={max} is less than slots={}", entry.slots)));
        }
    }
    Ok(entry)
}

/// Splits `host`, `host:N`, `[v6]`, `[v6]:N` or a bare IPv6 address.
fn split_host_count(s: &str) -> Result<(String, Option<usize>), String> {
    if let Some(inner) = s.strip_prefix('[') {
        let (addr, after) = inner.split_once(']').ok_or("missing `]` after IPv6 address")?;
        addr.parse::<Ipv6Addr>().map_err(|_| format!("`{addr}` is not an IPv6 address"))?;
        let count = match after {
            "" => None,
            _ => {
                let n = after.strip_prefix(':').ok_or("unexpected text after `]`")?;
                Some(parse_count(n)?)
            }
        };
        return Ok((addr.to_string(), count));
    }
    if s.parse::<Ipv6Addr>().is_ok() {
        return Ok((s.to_string(), None));
    }
    match s.split_once(':') {
        Some((host, n)) => Ok((host.to_string(), Some(parse_count(n)?))),
        None => Ok((s.to_string(), None)),
    }
}

fn parse_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("expected a positive count, found `{s}`")),
    }
}

fn check_host(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty host name".into());
    }
    if name.starts_with('-') {
        return Err("host name must not start with `-`".into());
    }
    if name.parse::<Ipv6Addr>().is_ok() {
        return Ok(());
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')) {
        return Err("host name may only hold letters, digits, `-`, `.` and `_`".into());
    }
    Ok(())
}

fn check_user(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("empty user name".into());
    }
    if user.starts_with('-')
        || !user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '$'))
    {
        return Err(format!("`{user}` is not a valid user name"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<HostEntry>, HostfileError> {
        parse_hostfile(text, Path::new("hosts"))
    }

    fn host(name: &str, slots: usize) -> HostEntry {
        HostEntry { name: name.into(), user: None, port: None, slots, max_slots: None }
    }

    #[test]
    fn open_mpi_format() {
        let h = parse("node1 slots=4 max_slots=6\nnode2 slots=2\n").unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0], HostEntry { max_slots: Some(6), ..host("node1", 4) });
        assert_eq!(h[1], host("node2", 2));
        assert_eq!(parse("n max-slots=3").unwrap()[0].max_slots, Some(3));
    }

    #[test]
    fn mpich_format_and_bare_host() {
        let h = parse("node1:8\nnode2\n").unwrap();
        assert_eq!(h, vec![host("node1", 8), host("node2", 1)]);
    }

    #[test]
    fn comments_blanks_and_merging() {
        let text = "# cluster\n\n  node1 slots=2 # first\n\t\nnode1:3\nnode2 # two\n";
        let h = parse(text).unwrap();
        assert_eq!(h, vec![host("node1", 5), host("node2", 1)]);
    }

    #[test]
    fn user_port_and_ipv6() {
        let h = parse("alice@node7 slots=8 port=2222\n[fe80::1]:4\n[::1]\n2001:db8::5 slots=2\n")
            .unwrap();
        assert_eq!(h[0].user.as_deref(), Some("alice"));
        assert_eq!(h[0].port, Some(2222));
        assert_eq!(h[0].slots, 8);
        assert_eq!(h[0].display_name(), "node7:2222");
        assert_eq!(h[1], host("fe80::1", 4));
        assert_eq!(h[1].display_name(), "[fe80::1]");
        assert_eq!(h[2], host("::1", 1));
        assert!(h[2].is_local());
        assert_eq!(h[3], host("2001:db8::5", 2));
        let u = parse("node3 user=bob").unwrap();
        assert_eq!(u[0].user.as_deref(), Some("bob"));
    }

    #[test]
    fn same_host_different_ports_stay_apart() {
        let h = parse("n port=22\nn port=2222\n").unwrap();
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn bad_lines_cite_file_and_line() {
        let cases = [
            ("node1\nnode2 slots=zero\n", 2, "slots"),
            ("node1 slots=0", 1, "positive"),
            ("\n\nnode1:x", 3, "positive"),
            ("node1 frobnicate=1", 1, "unknown keyword"),
            ("node1 slots", 1, "key=value"),
            ("node1 port=0", 1, "port"),
            ("node1 port=70000", 1, "port"),
            ("[fe80::1", 1, "]"),
            ("[nothex]:2", 1, "IPv6"),
            ("no$de", 1, "letters"),
            ("-oProxyCommand=x", 1, "start with"),
            ("a;rm -rf /", 1, "letters"),
            ("@node", 1, "user"),
            ("node slots=4 max_slots=2", 1, "less than"),
            ("node:2 slots=3", 1, "twice"),
            ("`id`@node", 1, "user name"),
        ];
        for (text, line, needle) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.starts_with(&format!("hosts:{line}: ")), "{text:?} gave {err}");
            assert!(err.contains(needle), "{text:?} gave {err}, wanted {needle}");
        }
    }

    #[test]
    fn empty_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, "# nothing\n\n").unwrap();
        assert!(matches!(read_hostfile(&path), Err(HostfileError::Empty { .. })));
        let missing = dir.path().join("missing");
        let err = read_hostfile(&missing).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn host_list_option() {
        let h = parse_host_list("host1,host2:4,bob@host3").unwrap();
        assert_eq!(h[0], host("host1", 1));
        assert_eq!(h[1], host("host2", 4));
        assert_eq!(h[2].user.as_deref(), Some("bob"));
        let err = parse_host_list("a,,b").unwrap_err().to_string();
        assert!(err.starts_with("-H: "), "{err}");
        assert!(parse_host_list("a:0").is_err());
    }
}
