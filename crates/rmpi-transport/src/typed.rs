//! Object messages: a serde value encoded with bincode behind an 8-byte fingerprint of its
//! type's name, so a value received as the wrong type is an error instead of garbage.
//!
//! Layout: `fingerprint (u64, little-endian) ++ bincode(value)` (bincode's standard config).
//! The fingerprint is the 64-bit FNV-1a hash of the type's name as `std::any::type_name` spells
//! it, after the spellings of one serde shape are made one: references are dropped, `str` counts
//! as `String` and a slice `[T]` as `Vec<T>` (so `send_obj("hi")` is received as a `String`, and
//! `send_obj(&v[..])` as a `Vec`).
//!
//! Used by `Communicator::send_obj`/`recv_obj` and the object collectives of
//! `rmpi-collectives`; not meant to be called by users.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// Bytes the fingerprint adds to every object message.
pub const FINGERPRINT_LEN: usize = 8;

/// Fingerprints seen in this process, by type-name pointer, and the names behind them (to name
/// the sender's type in a mismatch when this process knows it).
struct Names {
    by_name: HashMap<(usize, usize), u64>,
    by_print: HashMap<u64, &'static str>,
}

fn names() -> &'static Mutex<Names> {
    static NAMES: OnceLock<Mutex<Names>> = OnceLock::new();
    NAMES.get_or_init(|| Mutex::new(Names { by_name: HashMap::new(), by_print: HashMap::new() }))
}

/// The fingerprint of `T` (cached after the first call for each type).
pub fn fingerprint<T: ?Sized>() -> u64 {
    let name = std::any::type_name::<T>();
    let key = (name.as_ptr() as usize, name.len());
    let mut names = names().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(f) = names.by_name.get(&key) {
        return *f;
    }
    let f = fnv1a(normalize(name).as_bytes());
    names.by_name.insert(key, f);
    names.by_print.entry(f).or_insert(name);
    f
}

fn known_name(print: u64) -> Option<&'static str> {
    names().lock().unwrap_or_else(|p| p.into_inner()).by_print.get(&print).copied()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// One spelling per serde shape: no references, `str` as `String`, `[T]` as `Vec<T>`.
fn normalize(name: &str) -> String {
    let name = name.replace("&mut ", "").replace('&', "");
    let mut out = String::with_capacity(name.len() + 16);
    normalize_into(&name, &mut out);
    out
}

fn normalize_into(s: &str, out: &mut String) {
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('[') {
            let close = matching_bracket(inner);
            let body = &inner[..close];
            if top_level_semicolon(body) {
                // An array `[T; N]`: its own shape.
                out.push('[');
                normalize_into(body, out);
                out.push(']');
            } else {
                out.push_str("alloc::vec::Vec<");
                normalize_into(body, out);
                out.push('>');
            }
            rest = inner.get(close + 1..).unwrap_or("");
            continue;
        }
        let word_len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        if word_len == 0 {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let word = &rest[..word_len];
        out.push_str(if word == "str" { "alloc::string::String" } else { word });
        rest = &rest[word_len..];
    }
}

/// Index of the `]` closing a `[` whose contents start `s` (or `s.len()` if unbalanced).
fn matching_bracket(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '[' | '<' | '(' => depth += 1,
            ']' | '>' | ')' if depth > 0 => depth -= 1,
            ']' => return i,
            _ => {}
        }
    }
    s.len()
}

fn top_level_semicolon(s: &str) -> bool {
    let mut depth = 0usize;
    for c in s.chars() {
        match c {
            '[' | '<' | '(' => depth += 1,
            ']' | '>' | ')' => depth = depth.saturating_sub(1),
            ';' if depth == 0 => return true,
            _ => {}
        }
    }
    false
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Appends `fingerprint(T) ++ bincode(value)` to `out`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
    out.extend_from_slice(&fingerprint::<T>().to_le_bytes());
    bincode::serde::encode_into_std_write(value, out, config())
        .map_err(|e| Error::Encode(e.to_string()))?;
    Ok(())
}

/// `fingerprint(T) ++ bincode(value)`.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Decodes a message made by [`encode`] as a `T` sent by `source_rank`: a different type's
/// fingerprint, a malformed body or trailing bytes are [`Error::Decode`].
pub fn decode<T: DeserializeOwned>(bytes: &[u8], source_rank: usize) -> Result<T> {
    let err = |msg: String| Error::Decode { source_rank, msg };
    let Some((print, body)) = bytes.split_first_chunk::<FINGERPRINT_LEN>() else {
        return Err(err(format!("{} bytes is too short for an object message", bytes.len())));
    };
    let (sent, want) = (u64::from_le_bytes(*print), fingerprint::<T>());
    if sent != want {
        let mine = std::any::type_name::<T>();
        let theirs = known_name(sent)
            .map_or_else(|| format!("type fingerprint {sent:#018x}"), |n| n.to_string());
        return Err(err(format!("the value was sent as {theirs}, received as {mine}")));
    }
    let (v, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| err(format!("as {}: {e}", std::any::type_name::<T>())))?;
    if used != body.len() {
        return Err(err(format!("{} trailing bytes after the value", body.len() - used)));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_shape_agree() {
        assert_eq!(fingerprint::<str>(), fingerprint::<String>());
        assert_eq!(fingerprint::<&str>(), fingerprint::<String>());
        assert_eq!(fingerprint::<[u64]>(), fingerprint::<Vec<u64>>());
        assert_eq!(fingerprint::<&[&str]>(), fingerprint::<Vec<String>>());
        assert_eq!(
            fingerprint::<(u8, &[(u32, String)])>(),
            fingerprint::<(u8, Vec<(u32, String)>)>()
        );
        assert_ne!(fingerprint::<[u64; 3]>(), fingerprint::<Vec<u64>>());
        assert_ne!(fingerprint::<String>(), fingerprint::<Vec<u64>>());
        assert_ne!(fingerprint::<u32>(), fingerprint::<i32>());
    }

    #[test]
    fn a_mismatch_names_both_types() {
        let bytes = encode("hello").unwrap();
        let e = decode::<Vec<u64>>(&bytes, 3).unwrap_err().to_string();
        assert!(e.contains("rank 3") && e.contains("str") && e.contains("Vec<u64>"), "{e}");
        assert_eq!(decode::<String>(&bytes, 3).unwrap(), "hello");
    }

    #[test]
    fn an_unknown_fingerprint_is_shown_in_hex() {
        let mut bytes = 0x1234u64.to_le_bytes().to_vec();
        bytes.push(0);
        let e = decode::<u8>(&bytes, 0).unwrap_err().to_string();
        assert!(e.contains("0x0000000000001234") && e.contains("u8"), "{e}");
    }

    #[test]
    fn short_and_trailing_bytes_are_errors() {
        assert!(decode::<u8>(&[1, 2], 0).is_err());
        let mut bytes = encode(&7u8).unwrap();
        bytes.push(0);
        assert!(decode::<u8>(&bytes, 0).unwrap_err().to_string().contains("trailing"));
    }
}
