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
    /// The file is larger than any real hostfile ([`MAX_FILE`] bytes).
    #[error("hostfile {path} is larger than {limit} bytes; is it really a hostfile?")]
    TooLarge { path: PathBuf, limit: u64 },
}

/// Largest hostfile read, in bytes (a million hosts of 16 characters fit).
pub const MAX_FILE: u64 = 16 << 20;

/// Longest hostfile line, in bytes.
pub const MAX_LINE: usize = 4096;

/// Most slots one host may have: the largest world (`RMPI_SIZE` is at most 65535).
pub const MAX_SLOTS: usize = 65_535;

/// Longest host name (DNS allows 253 characters).
const MAX_HOST_NAME: usize = 253;

/// Longest piece of a bad line echoed in an error message.
const ECHO: usize = 80;

/// Reads and parses a hostfile.
pub fn read_hostfile(path: &Path) -> Result<Vec<HostEntry>, HostfileError> {
    use std::io::Read;
    let read_err = |source| HostfileError::Read { path: path.to_path_buf(), source };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE + 1).read_to_end(&mut bytes))
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(HostfileError::TooLarge { path: path.to_path_buf(), limit: MAX_FILE });
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let at = e.utf8_error().valid_up_to();
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        let start = bytes[..at].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        HostfileError::Syntax {
            origin: Origin::File { path: path.to_path_buf(), line },
            text: shorten(&String::from_utf8_lossy(&bytes[start..at])),
            reason: format!("byte {} of the line is not UTF-8", at - start + 1),
        }
    })?;
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
        if raw.len() > MAX_LINE {
            return Err(HostfileError::Syntax {
                origin,
                text: shorten(line),
                reason: format!("line is longer than {MAX_LINE} bytes"),
            });
        }
        let entry = parse_line(line, &origin)?;
        merge(&mut hosts, entry, line, &origin)?;
    }
    Ok(hosts)
}

/// At most [`ECHO`] characters of `s`, for error messages.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(ECHO) {
        Some((end, _)) => format!("{}...", &s[..end]),
        None => s.to_string(),
    }
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
        merge(&mut hosts, entry, item, &Origin::CommandLine)?;
    }
    Ok(hosts)
}

/// Adds `entry` to `hosts`, or its slots to the same host's earlier entry (`line`/`origin`
/// name the entry for the error when the sum exceeds [`MAX_SLOTS`]).
fn merge(
    hosts: &mut Vec<HostEntry>,
    entry: HostEntry,
    line: &str,
    origin: &Origin,
) -> Result<(), HostfileError> {
    let Some(existing) = hosts.iter_mut().find(|h| h.same_target(&entry)) else {
        hosts.push(entry);
        return Ok(());
    };
    let add = |a: usize, b: usize| a.checked_add(b).filter(|&n| n <= MAX_SLOTS);
    let slots = add(existing.slots, entry.slots);
    let max_slots = match (existing.max_slots, entry.max_slots) {
        (Some(a), Some(b)) => Some(add(a, b)),
        _ => Some(None),
    };
    match (slots, max_slots) {
        (Some(slots), Some(max_slots)) => {
            existing.slots = slots;
            existing.max_slots = max_slots;
            Ok(())
        }
        _ => Err(HostfileError::Syntax {
            origin: origin.clone(),
            text: shorten(line),
            reason: format!(
                "{} is listed before; together its slots come to more than {MAX_SLOTS}",
                entry.display_name()
            ),
        }),
    }
}

fn parse_line(line: &str, origin: &Origin) -> Result<HostEntry, HostfileError> {
    let err = |reason: &str| HostfileError::Syntax {
        origin: origin.clone(),
        text: shorten(line),
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
    match s.parse::<u128>() {
        Ok(n @ 1..) if n <= MAX_SLOTS as u128 => Ok(n as usize),
        Ok(1..) => Err(format!("a count must be at most {MAX_SLOTS}, found `{}`", shorten(s))),
        _ => Err(format!("expected a positive count, found `{}`", shorten(s))),
    }
}

fn check_host(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty host name".into());
    }
    if name.starts_with('-') {
        return Err("host name must not start with `-`".into());
    }
    if name.len() > MAX_HOST_NAME {
        return Err(format!("host name is longer than {MAX_HOST_NAME} characters"));
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
    fn absurd_counts_are_refused_with_their_line() {
        let e = parse("n slots=9223372036854775808\nn slots=9223372036854775808\n").unwrap_err();
        assert!(e.to_string().contains("hosts:1") && e.to_string().contains("at most"), "{e}");
        // Each line is fine, their sum is not: the second line is blamed, nothing wraps.
        let e = parse("n slots=40000\nm\nn:40000\n").unwrap_err().to_string();
        assert!(e.contains("hosts:3") && e.contains("more than 65535"), "{e}");
        assert_eq!(parse("n slots=30000\nn:35535\n").unwrap()[0].slots, MAX_SLOTS);
        let e = parse("n max_slots=18446744073709551615").unwrap_err().to_string();
        assert!(e.contains("max_slots") && e.contains("at most"), "{e}");
    }

    #[test]
    fn hostile_files_give_short_errors_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, b"node1\nnode2 slots=2\nno\xffde3\n").unwrap();
        let e = read_hostfile(&path).unwrap_err().to_string();
        assert!(e.contains("hosts:3") && e.contains("not UTF-8"), "{e}");
        let zero = read_hostfile(Path::new("/dev/zero")).unwrap_err();
        assert!(matches!(zero, HostfileError::TooLarge { .. }), "{zero}");
        let huge = format!("node1\n{}\n", "h".repeat(1 << 20));
        std::fs::write(&path, &huge).unwrap();
        let e = read_hostfile(&path).unwrap_err().to_string();
        assert!(e.contains("hosts:2") && e.contains("longer than") && e.len() < 300, "{e}");
        let e = parse(&"h".repeat(300)).unwrap_err().to_string();
        assert!(e.contains("longer than 253") && e.len() < 300, "{e}");
        let e = parse_host_list(&format!("a,{}", "b".repeat(5000))).unwrap_err().to_string();
        assert!(e.len() < 300, "{e}");
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
