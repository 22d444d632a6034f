//! The user's OpenSSH public key (`ssh-ed25519 AAAA... comment` or `ssh-rsa AAAA...`, the two
//! types EC2 imports) and the fingerprints EC2 may report for it.
//!
//! EC2 fingerprints an imported RSA key as the MD5 of its DER `SubjectPublicKeyInfo`, in
//! colon-separated hex; an imported ED25519 key as the base64 SHA-256 of the OpenSSH key blob
//! (what `ssh-keygen -l` prints). EC2 emulators differ (moto takes the SHA-256 of the DER
//! `SubjectPublicKeyInfo` in colon-separated hex), so every form is computed and any match
//! counts.

use std::path::Path;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The key algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// `ssh-ed25519`.
    Ed25519,
    /// `ssh-rsa`.
    Rsa,
}

/// A parsed OpenSSH public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    /// The algorithm.
    pub kind: KeyKind,
    /// `TYPE BASE64` without the comment: what ImportKeyPair receives.
    pub material: String,
    blob: Vec<u8>,
    spki: Vec<u8>,
}

impl PublicKey {
    /// Reads and parses the public key file at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let bad = |reason: String| Error::SshKey { path: path.to_path_buf(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| {
            bad(if e.kind() == std::io::ErrorKind::NotFound {
                "no such file (make a key with `ssh-keygen -t ed25519`, or pass --key-file)".into()
            } else {
                e.to_string()
            })
        })?;
        Self::parse(&text).map_err(bad)
    }

    /// Parses the first non-comment line of an OpenSSH public key file.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or("the file holds no key")?;
        if line.starts_with("-----BEGIN") {
            return Err("this is a private key or a PEM file: give the `.pub` file".into());
        }
        let mut fields = line.split_whitespace();
        let kind_name = fields.next().unwrap_or_default();
        let kind = match kind_name {
            "ssh-ed25519" => KeyKind::Ed25519,
            "ssh-rsa" => KeyKind::Rsa,
            other => {
                return Err(format!(
                    "key type `{other}` cannot be imported into EC2 (only ssh-ed25519 and ssh-rsa)"
                ));
            }
        };
        let encoded = fields.next().ok_or("no key data after the key type")?;
        let blob =
            STANDARD.decode(encoded).map_err(|e| format!("the key data is not base64 ({e})"))?;
        let mut reader = Reader(&blob);
        if reader.string()? != kind_name.as_bytes() {
            return Err("the key data does not match its key type".into());
        }
        let spki = match kind {
            KeyKind::Ed25519 => {
                let key = reader.string()?;
                if key.len() != 32 {
                    return Err(format!("an ed25519 key has 32 bytes, not {}", key.len()));
                }
                let mut spki = hex_bytes("302a300506032b6570032100");
                spki.extend_from_slice(key);
                spki
            }
            KeyKind::Rsa => {
                let e = reader.string()?;
                let n = reader.string()?;
                rsa_spki(n, e)
            }
        };
        if !reader.0.is_empty() {
            return Err("trailing bytes after the key".into());
        }
        Ok(Self { kind, material: format!("{kind_name} {encoded}"), blob, spki })
    }

    /// Every fingerprint EC2 (or an emulator of it) may report for this key.
    pub fn fingerprints(&self) -> Vec<String> {
        match self.kind {
            KeyKind::Rsa => vec![colon_hex(&Md5::digest(&self.spki))],
            KeyKind::Ed25519 => {
                let blob_sha = Sha256::digest(&self.blob);
                vec![
                    STANDARD.encode(blob_sha),
                    STANDARD_NO_PAD.encode(blob_sha),
                    colon_hex(&Sha256::digest(&self.spki)),
                ]
            }
        }
    }

    /// Whether EC2's `fingerprint` is one of this key's.
    pub fn matches(&self, fingerprint: &str) -> bool {
        let fingerprint = fingerprint.trim();
        let fingerprint = fingerprint.strip_prefix("SHA256:").unwrap_or(fingerprint);
        self.fingerprints().iter().any(|f| f.eq_ignore_ascii_case(fingerprint))
    }
}

/// Reads SSH wire-format strings (u32 big-endian length, bytes).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn string(&mut self) -> std::result::Result<&'a [u8], String> {
        let truncated = || "the key data is truncated".to_string();
        let len_bytes: [u8; 4] =
            self.0.get(..4).ok_or_else(truncated)?.try_into().map_err(|_| truncated())?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let value = self.0.get(4..4 + len).ok_or_else(truncated)?;
        self.0 = &self.0[4 + len..];
        Ok(value)
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect()
}

fn colon_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// A DER element: tag, definite length, content.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER from an SSH `mpint` (big-endian two's complement): minimal, non-negative.
fn der_uint(mpint: &[u8]) -> Vec<u8> {
    let digits: Vec<u8> = mpint.iter().copied().skip_while(|&b| b == 0).collect();
    let mut content = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|&b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend(digits);
    der(0x02, &content)
}

/// `SubjectPublicKeyInfo { rsaEncryption, RSAPublicKey { n, e } }` in DER.
fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let rsa_key = der(0x30, &[der_uint(n), der_uint(e)].concat());
    // AlgorithmIdentifier { OID 1.2.840.113549.1.1.1, NULL }
    let algorithm = hex_bytes("300d06092a864886f70d0101010500");
    let mut bits = vec![0u8];
    bits.extend(rsa_key);
    der(0x30, &[algorithm, der(0x03, &bits)].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = include_str!("../../tests/fixtures/id_ed25519.pub");
    const RSA: &str = include_str!("../../tests/fixtures/id_rsa.pub");

    #[test]
    fn ed25519_fingerprints() {
        let key = PublicKey::parse(ED25519).unwrap();
        assert_eq!(key.kind, KeyKind::Ed25519);
        assert!(!key.material.contains("test@rmpi"), "the comment is not sent");
        // `ssh-keygen -lf` of the fixture.
        assert!(key.matches("SHA256:ja3kY4HqI32p+9xopCPcKLagbBkt2FqLJXDFN7llYS4"));
        assert!(key.matches("ja3kY4HqI32p+9xopCPcKLagbBkt2FqLJXDFN7llYS4="));
        // Python `cryptography`: SHA-256 of the DER SubjectPublicKeyInfo.
        assert!(key.matches(
            "ed:bc:36:a6:86:b1:e6:9f:0b:05:89:da:82:95:7f:1b:61:db:c8:0a:d0:63:c4:0b:ee:24:ab:9f:75:6c:aa:5d"
        ));
        assert!(!key.matches("67:6b:32:61:57:49:4c:86:89:af:cb:53:a7:0d:ea:2f"));
    }

    #[test]
    fn rsa_fingerprint_is_md5_of_der() {
        let key = PublicKey::parse(RSA).unwrap();
        assert_eq!(key.kind, KeyKind::Rsa);
        // Python `cryptography`: MD5 of the DER SubjectPublicKeyInfo (as EC2 documents).
        assert_eq!(key.fingerprints(), ["67:6b:32:61:57:49:4c:86:89:af:cb:53:a7:0d:ea:2f"]);
    }

    #[test]
    fn bad_keys_say_why() {
        let cases = [
            ("", "holds no key"),
            ("-----BEGIN OPENSSH PRIVATE KEY-----\n", "private key"),
            ("ecdsa-sha2-nistp256 AAAA", "cannot be imported"),
            ("ssh-ed25519", "no key data"),
            ("ssh-ed25519 !!!", "not base64"),
            ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==", "truncated"),
            (
                "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAINw7kacIN60V5WigKCE/ZlUyg6wS6/LmJUyLeSkrnWko",
                "does not match",
            ),
        ];
        for (text, expected) in cases {
            let err = PublicKey::parse(text).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
        let err = PublicKey::read(Path::new("/nonexistent/id.pub")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/id.pub: no such file"), "{err}");
    }
}
