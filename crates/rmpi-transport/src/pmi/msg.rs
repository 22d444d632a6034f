//! A decoded PMI message: a command name and its `key=value` fields, shared by both codecs.

/// Bytes or text a PMI server sent that do not form a valid message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The message does not start with `cmd=`.
    #[error("message does not start with cmd=: {0:?}")]
    NoCommand(String),
    /// A field is not `key=value`.
    #[error("field {0:?} is not key=value")]
    BadField(String),
    /// The PMI-2 length prefix is not a decimal number.
    #[error("length prefix {0:?} is not a decimal number")]
    BadLength(String),
    /// A message is longer than this client accepts.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The message is not UTF-8.
    #[error("message is not UTF-8")]
    NotUtf8,
    /// A value to send contains a character the servers cannot carry.
    #[error("{what} {value:?} contains a character PMI cannot carry (space, ';', '=', newline)")]
    BadChar {
        /// `key` or `value`.
        what: &'static str,
        /// The offending text.
        value: String,
    },
}

/// One PMI message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    /// The command (`fullinit-response`, `get_result`, ...).
    pub cmd: String,
    /// The other fields, in order.
    pub fields: Vec<(String, String)>,
}

impl Msg {
    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The return code: `rc`, or 0 when absent (Hydra leaves it out of several replies). An `rc`
    /// that is not a number counts as failure (-1).
    pub fn rc(&self) -> i64 {
        self.get("rc").map_or(0, |v| v.trim().parse().unwrap_or(-1))
    }

    /// Parses `cmd=NAME` followed by `fields`, each `key=value` (the value may contain `=`).
    pub(crate) fn from_fields<'a>(
        text: &str,
        mut parts: impl Iterator<Item = &'a str>,
    ) -> Result<Msg, CodecError> {
        let first = parts.next().unwrap_or("");
        let cmd = first
            .strip_prefix("cmd=")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| CodecError::NoCommand(preview(text)))?;
        let mut fields = Vec::new();
        for p in parts.filter(|p| !p.is_empty()) {
            let (k, v) = p.split_once('=').ok_or_else(|| CodecError::BadField(preview(p)))?;
            fields.push((k.to_owned(), v.to_owned()));
        }
        Ok(Msg { cmd: cmd.to_owned(), fields })
    }
}

/// Checks that `s` can travel as a PMI key or value under both servers: no space, `;`, `=`,
/// newline or other control character.
pub(crate) fn check_token(what: &'static str, s: &str) -> Result<(), CodecError> {
    if s.chars().any(|c| c == ' ' || c == ';' || c == '=' || c.is_control()) {
        return Err(CodecError::BadChar { what, value: preview(s) });
    }
    Ok(())
}

/// At most 80 characters of `s`, for error messages.
pub(crate) fn preview(s: &str) -> String {
    s.chars().take(80).collect()
}
