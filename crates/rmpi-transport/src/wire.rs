//! The wire format: every byte rmpi puts on a socket is encoded and decoded here.
//!
//! The normative description is `docs/wire-protocol.md`; this module is its implementation. All
//! integers are little-endian. Decoders are pure functions over byte slices so that they can be
//! fuzzed (see `fuzz/`): they never panic and never allocate more than the input justifies.
//!
//! * [`Hello`] (40 bytes) opens every connection, to the rendezvous server and between ranks;
//!   between ranks it carries the eager credit its sender grants (see `engine/flow.rs`).
//! * [`Endpoint`] records carry a rank's advertised address and host name.
//! * [`FrameHeader`] (32 bytes) precedes every message between ranks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The four bytes every connection starts with.
pub const MAGIC: [u8; 4] = *b"RMPI";
/// The protocol version spoken by this build (2: the hello and the shared-memory offer carry
/// the eager credit their sender grants; announced messages are never pushed at finalize).
pub const VERSION: u16 = 2;
/// Size of an encoded [`Hello`].
pub const HELLO_LEN: usize = 40;
/// Size of an encoded [`FrameHeader`].
pub const HEADER_LEN: usize = 32;
/// Two bytes that open every frame header, to catch a desynchronised stream early.
pub const FRAME_MAGIC: u16 = 0x4d52; // "RM"
/// Longest host name carried in an [`Endpoint`].
pub const MAX_HOSTNAME: usize = 255;
/// Size of an encoded [`ShmOffer`].
pub const SHM_OFFER_LEN: usize = 16 + 8 + 8 + 4 + 4 + 4 + 4;
/// Longest encoded [`Endpoint`].
pub const MAX_ENDPOINT_LEN: usize = 1 + 16 + 2 + 1 + MAX_HOSTNAME + 1 + SHM_OFFER_LEN;

/// What a [`Hello`] opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum HelloKind {
    /// A rank joining the rendezvous.
    Rendezvous = 1,
    /// A rank connecting to a peer rank.
    Peer = 2,
}

/// A malformed or unexpected piece of wire data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input ended before the structure did.
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// The connection does not speak rmpi.
    #[error("bad magic {0:02x?} (not an rmpi peer)")]
    BadMagic([u8; 4]),
    /// The peer speaks another protocol version.
    #[error("protocol version {0} (this build speaks {VERSION})")]
    BadVersion(u16),
    /// Unknown hello kind.
    #[error("unknown hello kind {0}")]
    BadHelloKind(u16),
    /// A frame header does not start with the frame magic.
    #[error("corrupt frame header (magic {0:#06x})")]
    BadFrameMagic(u16),
    /// A frame header has an unknown kind.
    #[error("unknown frame kind {0}")]
    BadFrameKind(u8),
    /// A reserved field is not zero.
    #[error("reserved header bits set ({0:#x})")]
    Reserved(u64),
    /// A frame claims more payload than this rank accepts.
    #[error("frame length {len} exceeds the limit of {max} bytes")]
    TooLong {
        /// Claimed length.
        len: u64,
        /// The configured maximum.
        max: u64,
    },
    /// An address family byte other than 4 or 6.
    #[error("unknown address family {0}")]
    BadFamily(u8),
    /// An endpoint's shared-memory flag is neither 0 nor 1.
    #[error("bad shared-memory flag {0}")]
    BadShmFlag(u8),
    /// A host name that is too long or not UTF-8.
    #[error("bad host name")]
    BadHostname,
    /// A rendezvous reply of unknown kind.
    #[error("unknown rendezvous reply kind {0}")]
    BadReplyKind(u8),
    /// A table whose size disagrees with the job's.
    #[error("rendezvous table has {got} entries, expected {expected}")]
    BadTableSize {
        /// Entries announced.
        got: u32,
        /// World size.
        expected: u32,
    },
    /// Bytes left over after a message that should have ended.
    #[error("{0} bytes after the end of the message")]
    Trailing(usize),
}

/// The greeting that opens every connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// What this connection is for.
    pub kind: HelloKind,
    /// The job token (128 bits).
    pub token: [u8; 16],
    /// The world size the sender was started with.
    pub size: u32,
    /// The sender's rank (for the rendezvous server's reply: `u32::MAX`).
    pub rank: u32,
    /// Peer hellos: the eager bytes (payload plus header) the sender lets the receiver have
    /// unreceived at it, its credit there. Rendezvous hellos: 0.
    pub grant: u64,
}

impl Hello {
    /// Encodes the hello into its 40 bytes.
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut b = [0u8; HELLO_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&VERSION.to_le_bytes());
        b[6..8].copy_from_slice(&(self.kind as u16).to_le_bytes());
        b[8..24].copy_from_slice(&self.token);
        b[24..28].copy_from_slice(&self.size.to_le_bytes());
        b[28..32].copy_from_slice(&self.rank.to_le_bytes());
        b[32..40].copy_from_slice(&self.grant.to_le_bytes());
        b
    }

    /// Checks as much of the magic and version as the first bytes of a hello hold, so that a
    /// connection that does not speak this protocol (or another version of it, whose hello may
    /// be shorter) is refused without waiting for a whole hello.
    pub fn check_start(b: &[u8]) -> Result<(), WireError> {
        let n = b.len().min(4);
        if b[..n] != MAGIC[..n] {
            let mut magic = [0u8; 4];
            magic[..n].copy_from_slice(&b[..n]);
            return Err(WireError::BadMagic(magic));
        }
        if b.len() >= 6 {
            let version = u16::from_le_bytes([b[4], b[5]]);
            if version != VERSION {
                return Err(WireError::BadVersion(version));
            }
        }
        Ok(())
    }

    /// Decodes a hello. Checks magic, version and kind; the caller checks token, size and rank.
    pub fn decode(b: &[u8]) -> Result<Hello, WireError> {
        Hello::check_start(b.get(..6).unwrap_or(b))?;
        if b.len() < HELLO_LEN {
            return Err(WireError::Truncated { need: HELLO_LEN, have: b.len() });
        }
        let kind = match u16::from_le_bytes([b[6], b[7]]) {
            1 => HelloKind::Rendezvous,
            2 => HelloKind::Peer,
            k => return Err(WireError::BadHelloKind(k)),
        };
        let mut token = [0u8; 16];
        token.copy_from_slice(&b[8..24]);
        Ok(Hello {
            kind,
            token,
            size: u32::from_le_bytes([b[24], b[25], b[26], b[27]]),
            rank: u32::from_le_bytes([b[28], b[29], b[30], b[31]]),
            grant: u64::from_le_bytes([b[32], b[33], b[34], b[35], b[36], b[37], b[38], b[39]]),
        })
    }
}

/// Where a rank can be reached, and what it calls its host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The advertised listening address.
    pub addr: SocketAddr,
    /// The rank's host name (for messages only).
    pub host: String,
    /// How ranks on the same host reach this one through shared memory; `None` when it does not
    /// take part (shared memory off, or the kernel identity could not be read).
    pub shm: Option<ShmOffer>,
}

/// The identity of the kernel and namespaces a rank runs in. Two ranks share memory only when
/// these are equal: same boot of the same kernel, same network namespace (the test clusters'
/// "hosts" are network namespaces of one machine and must stay separate), same PID namespace (so
/// that a PID names the same process) and same user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostId {
    /// `/proc/sys/kernel/random/boot_id`, as 16 bytes.
    pub boot_id: [u8; 16],
    /// Inode of `/proc/self/ns/net`.
    pub net_ns: u64,
    /// Inode of `/proc/self/ns/pid`.
    pub pid_ns: u64,
    /// Real user id.
    pub uid: u32,
}

/// A rank's offer to share memory with the ranks on its host (see `docs/shared-memory.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShmOffer {
    /// Where the rank runs.
    pub host: HostId,
    /// Its process id (in [`HostId::pid_ns`]).
    pub pid: u32,
    /// The descriptor number of the segment it would serve as the host's leader (a memfd, opened
    /// by the others through `/proc/PID/fd/N`).
    pub segment_fd: u32,
    /// The eager bytes (payload plus header) the rank lets each local peer have unreceived at
    /// it: that peer's credit there.
    pub grant: u32,
}

impl ShmOffer {
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.host.boot_id);
        out.extend_from_slice(&self.host.net_ns.to_le_bytes());
        out.extend_from_slice(&self.host.pid_ns.to_le_bytes());
        out.extend_from_slice(&self.host.uid.to_le_bytes());
        out.extend_from_slice(&self.pid.to_le_bytes());
        out.extend_from_slice(&self.segment_fd.to_le_bytes());
        out.extend_from_slice(&self.grant.to_le_bytes());
    }

    /// Decodes exactly [`SHM_OFFER_LEN`] bytes.
    fn decode(b: &[u8; SHM_OFFER_LEN]) -> ShmOffer {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or([0; 4]));
        let mut boot_id = [0u8; 16];
        boot_id.copy_from_slice(&b[..16]);
        ShmOffer {
            host: HostId { boot_id, net_ns: u64_at(16), pid_ns: u64_at(24), uid: u32_at(32) },
            pid: u32_at(36),
            segment_fd: u32_at(40),
            grant: u32_at(44),
        }
    }
}

impl Endpoint {
    /// Appends the encoded endpoint to `out`: family (1 byte: 4 or 6), address (4 or 16 bytes),
    /// port (2), host name length (1), host name bytes (truncated to 255), then 0 or 1 (1 byte)
    /// and, after a 1, the [`ShmOffer`] (48 bytes).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self.addr.ip() {
            IpAddr::V4(ip) => {
                out.push(4);
                out.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                out.push(6);
                out.extend_from_slice(&ip.octets());
            }
        }
        out.extend_from_slice(&self.addr.port().to_le_bytes());
        let mut host = self.host.as_str();
        while host.len() > MAX_HOSTNAME {
            // Truncate on a character boundary.
            let mut cut = MAX_HOSTNAME;
            while !host.is_char_boundary(cut) {
                cut -= 1;
            }
            host = &host[..cut];
        }
        out.push(host.len() as u8);
        out.extend_from_slice(host.as_bytes());
        match &self.shm {
            None => out.push(0),
            Some(o) => {
                out.push(1);
                o.encode_into(out);
            }
        }
    }

    /// Decodes one endpoint from the front of `b`, returning it and the bytes consumed.
    pub fn decode(b: &[u8]) -> Result<(Endpoint, usize), WireError> {
        let need = |n: usize| {
            if b.len() < n {
                Err(WireError::Truncated { need: n, have: b.len() })
            } else {
                Ok(())
            }
        };
        need(1)?;
        let (ip, mut at): (IpAddr, usize) = match b[0] {
            4 => {
                need(5)?;
                (IpAddr::V4(Ipv4Addr::new(b[1], b[2], b[3], b[4])), 5)
            }
            6 => {
                need(17)?;
                let mut o = [0u8; 16];
                o.copy_from_slice(&b[1..17]);
                (IpAddr::V6(Ipv6Addr::from(o)), 17)
            }
            f => return Err(WireError::BadFamily(f)),
        };
        need(at + 3)?;
        let port = u16::from_le_bytes([b[at], b[at + 1]]);
        let hlen = b[at + 2] as usize;
        at += 3;
        need(at + hlen)?;
        let host =
            std::str::from_utf8(&b[at..at + hlen]).map_err(|_| WireError::BadHostname)?.to_owned();
        at += hlen;
        need(at + 1)?;
        let shm = match b[at] {
            0 => None,
            1 => {
                need(at + 1 + SHM_OFFER_LEN)?;
                let mut o = [0u8; SHM_OFFER_LEN];
                o.copy_from_slice(&b[at + 1..at + 1 + SHM_OFFER_LEN]);
                at += SHM_OFFER_LEN;
                Some(ShmOffer::decode(&o))
            }
            f => return Err(WireError::BadShmFlag(f)),
        };
        Ok((Endpoint { addr: SocketAddr::new(ip, port), host, shm }, at + 1))
    }
}

/// The rendezvous server's answer to a joining rank.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RendezvousReply {
    /// Every rank's endpoint, in rank order.
    Table(Vec<Endpoint>),
    /// The job could not be assembled; the text says why.
    Failed(String),
}

impl RendezvousReply {
    /// Encodes the reply, prefixed by its total length (u32) so a reader knows how much to wait for.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        match self {
            RendezvousReply::Table(t) => {
                body.push(1);
                body.extend_from_slice(&(t.len() as u32).to_le_bytes());
                for e in t {
                    e.encode_into(&mut body);
                }
            }
            RendezvousReply::Failed(msg) => {
                body.push(2);
                body.extend_from_slice(msg.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(body.len() + 4);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a reply body (without its length prefix) for a job of `size` ranks.
    pub fn decode(b: &[u8], size: u32) -> Result<RendezvousReply, WireError> {
        match b.first() {
            None => Err(WireError::Truncated { need: 1, have: 0 }),
            Some(1) => {
                if b.len() < 5 {
                    return Err(WireError::Truncated { need: 5, have: b.len() });
                }
                let n = u32::from_le_bytes([b[1], b[2], b[3], b[4]]);
                if n != size {
                    return Err(WireError::BadTableSize { got: n, expected: size });
                }
                let mut at = 5;
                let mut table = Vec::with_capacity((n as usize).min(b.len() / 8));
                for _ in 0..n {
                    let (e, used) = Endpoint::decode(&b[at..])?;
                    table.push(e);
                    at += used;
                }
                Ok(RendezvousReply::Table(table))
            }
            Some(2) => Ok(RendezvousReply::Failed(String::from_utf8_lossy(&b[1..]).into_owned())),
            Some(&k) => Err(WireError::BadReplyKind(k)),
        }
    }
}

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// A message: `len` payload bytes follow.
    Data = 1,
    /// The sender has finished: nothing follows on this connection.
    Goodbye = 2,
    /// Ready to send: a message of `len` bytes waits at the sender for its receive; no payload
    /// follows. The n-th of these on a connection is rendezvous number n.
    Rts = 3,
    /// Clear to send: a receive was posted for rendezvous number `tag`; no payload follows.
    Cts = 4,
    /// The payload of rendezvous number `tag`: `len` bytes follow.
    Bulk = 5,
    /// The receiver has taken `tag` bytes of eager messages: the sender may send that many
    /// more eagerly. No payload follows.
    Credit = 6,
    /// The sender is failing: `len` bytes (at most [`MAX_NOTICE`]) of UTF-8 text say why, and
    /// nothing follows on this connection.
    Failed = 7,
}

impl FrameKind {
    fn from_byte(b: u8) -> Option<FrameKind> {
        Some(match b {
            1 => FrameKind::Data,
            2 => FrameKind::Goodbye,
            3 => FrameKind::Rts,
            4 => FrameKind::Cts,
            5 => FrameKind::Bulk,
            6 => FrameKind::Credit,
            7 => FrameKind::Failed,
            _ => return None,
        })
    }

    /// Whether `len` counts payload bytes that follow the header (for an RTS it is the length
    /// of the message waiting at the sender).
    pub fn has_payload(self) -> bool {
        matches!(self, FrameKind::Data | FrameKind::Bulk | FrameKind::Failed)
    }
}

/// Longest cause text a [`FrameKind::Failed`] frame carries.
pub const MAX_NOTICE: u64 = 1024;

/// The fixed header in front of every message between ranks.
///
/// Layout (32 bytes): frame magic `u16`, kind `u8`, flags `u8` (0), context `u32`, tag `u64`,
/// payload length `u64`, reserved `u64` (0). The sender's rank is implied by the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// What the frame is (see [`FrameKind`]).
    pub kind: FrameKind,
    /// Communication context (separates communicators, and user from collective traffic).
    pub context: u32,
    /// Message tag.
    pub tag: u64,
    /// Payload length in bytes.
    pub len: u64,
}

impl FrameHeader {
    /// Encodes the header into its 32 bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..2].copy_from_slice(&FRAME_MAGIC.to_le_bytes());
        b[2] = self.kind as u8;
        b[4..8].copy_from_slice(&self.context.to_le_bytes());
        b[8..16].copy_from_slice(&self.tag.to_le_bytes());
        b[16..24].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// Decodes and checks a header. `max_len` is the largest payload this rank accepts: a longer
    /// claim is refused here, before anything is allocated for it.
    pub fn decode(b: &[u8], max_len: u64) -> Result<FrameHeader, WireError> {
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated { need: HEADER_LEN, have: b.len() });
        }
        let rd8 = |at: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(x)
        };
        let magic = u16::from_le_bytes([b[0], b[1]]);
        if magic != FRAME_MAGIC {
            return Err(WireError::BadFrameMagic(magic));
        }
        let kind = FrameKind::from_byte(b[2]).ok_or(WireError::BadFrameKind(b[2]))?;
        let reserved = rd8(24) | u64::from(b[3]);
        if reserved != 0 {
            return Err(WireError::Reserved(reserved));
        }
        let len = rd8(16);
        if len > max_len {
            return Err(WireError::TooLong { len, max: max_len });
        }
        let most = match kind {
            FrameKind::Goodbye | FrameKind::Cts | FrameKind::Credit => 0,
            FrameKind::Failed => MAX_NOTICE,
            FrameKind::Data | FrameKind::Rts | FrameKind::Bulk => u64::MAX,
        };
        if len > most {
            return Err(WireError::TooLong { len, max: most });
        }
        Ok(FrameHeader {
            kind,
            context: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            tag: rd8(8),
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip_and_rejects() {
        let h = Hello { kind: HelloKind::Peer, token: [7; 16], size: 64, rank: 63, grant: 1 << 33 };
        let b = h.encode();
        assert_eq!(Hello::decode(&b), Ok(h));
        assert!(matches!(Hello::decode(&b[..39]), Err(WireError::Truncated { .. })));
        let mut bad = b;
        bad[0] = b'X';
        assert!(matches!(Hello::decode(&bad), Err(WireError::BadMagic(_))));
        let mut bad = b;
        bad[4] = 9;
        assert_eq!(Hello::decode(&bad), Err(WireError::BadVersion(9)));
        // A version-1 hello (32 bytes) is refused from its first six.
        assert_eq!(
            Hello::check_start(&[b'R', b'M', b'P', b'I', 1, 0]),
            Err(WireError::BadVersion(1))
        );
        assert!(matches!(Hello::check_start(b"GE"), Err(WireError::BadMagic(_))));
        assert_eq!(Hello::check_start(&b[..3]), Ok(()));
        let mut bad = b;
        bad[6] = 77;
        assert_eq!(Hello::decode(&bad), Err(WireError::BadHelloKind(77)));
        // An HTTP request or SSH banner is not a hello.
        assert!(Hello::decode(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n.....").is_err());
        assert!(Hello::decode(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n").is_err());
    }

    #[test]
    fn endpoint_and_table_round_trip() {
        let t = vec![
            Endpoint { addr: "10.0.0.1:4000".parse().unwrap(), host: "node1".into(), shm: None },
            Endpoint {
                addr: "[fe80::1]:5000".parse().unwrap(),
                host: "n\u{e9}ud".into(),
                shm: Some(ShmOffer {
                    host: HostId { boot_id: [7; 16], net_ns: 1 << 40, pid_ns: 3, uid: 1000 },
                    pid: 4242,
                    segment_fd: 9,
                    grant: 1 << 20,
                }),
            },
            Endpoint { addr: "127.0.0.1:1".parse().unwrap(), host: String::new(), shm: None },
        ];
        let enc = RendezvousReply::Table(t.clone()).encode();
        let n = u32::from_le_bytes([enc[0], enc[1], enc[2], enc[3]]) as usize;
        assert_eq!(n + 4, enc.len());
        assert_eq!(RendezvousReply::decode(&enc[4..], 3), Ok(RendezvousReply::Table(t)));
        assert!(matches!(
            RendezvousReply::decode(&enc[4..], 4),
            Err(WireError::BadTableSize { got: 3, expected: 4 })
        ));
        // Every truncation is an error, never a panic.
        for cut in 0..enc.len() - 4 {
            assert!(RendezvousReply::decode(&enc[4..4 + cut], 3).is_err(), "cut {cut}");
        }
        let f = RendezvousReply::Failed("ranks 3, 5 never joined".into()).encode();
        assert_eq!(
            RendezvousReply::decode(&f[4..], 9),
            Ok(RendezvousReply::Failed("ranks 3, 5 never joined".into()))
        );
    }

    #[test]
    fn long_hostnames_are_truncated_on_a_char_boundary() {
        let e =
            Endpoint { addr: "1.2.3.4:5".parse().unwrap(), host: "\u{e9}".repeat(200), shm: None };
        let mut b = Vec::new();
        e.encode_into(&mut b);
        let (d, used) = Endpoint::decode(&b).unwrap();
        assert_eq!(used, b.len());
        assert_eq!(d.host.len(), 254);
    }

    #[test]
    fn header_round_trip_and_limits() {
        let h = FrameHeader { kind: FrameKind::Data, context: 5, tag: 1 << 40, len: 1 << 30 };
        let b = h.encode();
        assert_eq!(FrameHeader::decode(&b, 1 << 30), Ok(h));
        assert_eq!(
            FrameHeader::decode(&b, (1 << 30) - 1),
            Err(WireError::TooLong { len: 1 << 30, max: (1 << 30) - 1 })
        );
        let mut bad = b;
        bad[0] ^= 1;
        assert!(matches!(FrameHeader::decode(&bad, u64::MAX), Err(WireError::BadFrameMagic(_))));
        let mut bad = b;
        bad[2] = 8;
        assert_eq!(FrameHeader::decode(&bad, u64::MAX), Err(WireError::BadFrameKind(8)));
        // Control frames carry nothing; a failure notice carries a short text.
        for (kind, most) in [(FrameKind::Cts, 0), (FrameKind::Credit, 0), (FrameKind::Failed, 1024)]
        {
            let ok = FrameHeader { kind, context: 0, tag: 9, len: most };
            assert_eq!(FrameHeader::decode(&ok.encode(), u64::MAX), Ok(ok));
            let long = FrameHeader { len: most + 1, ..ok };
            assert!(matches!(
                FrameHeader::decode(&long.encode(), u64::MAX),
                Err(WireError::TooLong { .. })
            ));
        }
        let rts = FrameHeader { kind: FrameKind::Rts, context: 4, tag: 1, len: 1 << 20 };
        assert_eq!(FrameHeader::decode(&rts.encode(), 1 << 20), Ok(rts));
        assert!(FrameHeader::decode(&rts.encode(), (1 << 20) - 1).is_err());
        let mut bad = b;
        bad[30] = 1;
        assert!(matches!(FrameHeader::decode(&bad, u64::MAX), Err(WireError::Reserved(_))));
        let bye = FrameHeader { kind: FrameKind::Goodbye, context: 0, tag: 0, len: 0 };
        assert_eq!(FrameHeader::decode(&bye.encode(), 0), Ok(bye));
    }
}
