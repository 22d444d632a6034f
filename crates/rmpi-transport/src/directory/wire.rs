//! Every byte of the directory bootstrap, as pure encode/decode functions (spec:
//! `docs/wire-protocol.md`, "Directory bootstrap").
//!
//! A frame is a 4-byte little-endian length, then that many bytes: a kind byte and its body.
//! Integers are little-endian; a string is a `u16` length and UTF-8 bytes; an address is a
//! family byte (4 or 6), the address bytes and a `u16` port (as in an [`Endpoint`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::wire::{Endpoint, WireError};

/// Version of the directory protocol, carried in [`Msg::Register`] and [`Msg::Lookup`].
pub const DIRECTORY_VERSION: u16 = 1;

/// Largest frame a rank sends (a register or a look-up).
pub const MAX_RANK_FRAME: usize = 64 + crate::wire::MAX_ENDPOINT_LEN;

/// Largest frame any side accepts (a placement of 65535 runs and hosts with long names fits).
pub const MAX_FRAME: usize = 32 << 20;

/// Longest host label carried (longer ones are cut on a character boundary).
pub const MAX_LABEL: usize = 255;

/// One host of the job as every rank learns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostInfo {
    /// The host's name (its ranks' endpoint host name).
    pub label: String,
    /// Where its agent's directory answers look-ups.
    pub directory: SocketAddr,
}

/// Which host each rank is on, as runs of consecutive ranks, and each host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// `(host index, count)`: the next `count` ranks are on that host.
    pub runs: Vec<(u16, u16)>,
    /// The hosts, by index.
    pub hosts: Vec<HostInfo>,
}

impl Placement {
    /// Runs from a host index per rank.
    pub fn runs_of(host_of: &[u16]) -> Vec<(u16, u16)> {
        let mut runs: Vec<(u16, u16)> = Vec::new();
        for &h in host_of {
            match runs.last_mut() {
                Some((last, n)) if *last == h && *n < u16::MAX => *n += 1,
                _ => runs.push((h, 1)),
            }
        }
        runs
    }

    /// The host index of every rank.
    pub fn host_of(&self) -> Vec<u16> {
        let mut out = Vec::new();
        for &(h, n) in &self.runs {
            out.extend(std::iter::repeat_n(h, n as usize));
        }
        out
    }

    /// Checks that the runs cover exactly `size` ranks and name only listed hosts.
    pub fn check(&self, size: usize) -> Result<(), WireError> {
        let total: usize = self.runs.iter().map(|r| r.1 as usize).sum();
        let bad_host = self.runs.iter().find(|r| r.0 as usize >= self.hosts.len());
        if total != size || bad_host.is_some() || self.runs.iter().any(|r| r.1 == 0) {
            return Err(WireError::BadTableSize { got: total as u32, expected: size as u32 });
        }
        Ok(())
    }
}

/// What the gatherer hands each of its ranks once every host has reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Go {
    /// This host's index in the placement.
    pub host: u16,
    /// The job's placement.
    pub placement: Placement,
    /// This host's ranks and their endpoints.
    pub local: Vec<(u32, Endpoint)>,
}

/// A host's word to the launcher that all its ranks have registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The host's index.
    pub host: u16,
    /// How many ranks registered.
    pub ranks: u32,
    /// The host as its ranks name it, and its directory.
    pub info: HostInfo,
}

/// A directory message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// Rank → its gatherer: who it is and where it listens.
    Register {
        /// The job token.
        token: [u8; 16],
        /// World size.
        size: u32,
        /// The rank.
        rank: u32,
        /// Its endpoint.
        endpoint: Endpoint,
    },
    /// Rank → a remote host's directory: that host's entries, please.
    Lookup {
        /// The job token.
        token: [u8; 16],
        /// The asking rank (for the directory's log).
        from: u32,
    },
    /// Directory → rank: the ranks of its host and their endpoints.
    Entries(Vec<(u32, Endpoint)>),
    /// Gatherer → rank: start (see [`Go`]).
    Go(Go),
    /// Any side: the bootstrap failed; the text says why.
    Failed(String),
    /// Gatherer → launcher.
    Report(Report),
    /// Launcher → gatherer: the placement every host gets.
    Placement(Placement),
}

const K_REGISTER: u8 = 1;
const K_LOOKUP: u8 = 2;
const K_ENTRIES: u8 = 3;
const K_GO: u8 = 4;
const K_FAILED: u8 = 5;
const K_REPORT: u8 = 6;
const K_PLACEMENT: u8 = 7;

fn put_addr(out: &mut Vec<u8>, a: SocketAddr) {
    match a.ip() {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&a.port().to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut s = s;
    if s.len() > MAX_LABEL {
        let mut cut = MAX_LABEL;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s = &s[..cut];
    }
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_entries(out: &mut Vec<u8>, e: &[(u32, Endpoint)]) {
    out.extend_from_slice(&(e.len() as u32).to_le_bytes());
    for (r, ep) in e {
        out.extend_from_slice(&r.to_le_bytes());
        ep.encode_into(out);
    }
}

fn put_placement(out: &mut Vec<u8>, p: &Placement) {
    out.extend_from_slice(&(p.hosts.len() as u32).to_le_bytes());
    for h in &p.hosts {
        put_addr(out, h.directory);
        put_str(out, &h.label);
    }
    out.extend_from_slice(&(p.runs.len() as u32).to_le_bytes());
    for (h, n) in &p.runs {
        out.extend_from_slice(&h.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
    }
}

impl Msg {
    /// The whole frame, length prefix included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0u8; 4];
        match self {
            Msg::Register { token, size, rank, endpoint } => {
                out.push(K_REGISTER);
                out.extend_from_slice(&DIRECTORY_VERSION.to_le_bytes());
                out.extend_from_slice(token);
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(&rank.to_le_bytes());
                endpoint.encode_into(&mut out);
            }
            Msg::Lookup { token, from } => {
                out.push(K_LOOKUP);
                out.extend_from_slice(&DIRECTORY_VERSION.to_le_bytes());
                out.extend_from_slice(token);
                out.extend_from_slice(&from.to_le_bytes());
            }
            Msg::Entries(e) => {
                out.push(K_ENTRIES);
                put_entries(&mut out, e);
            }
            Msg::Go(g) => {
                out.push(K_GO);
                out.extend_from_slice(&g.host.to_le_bytes());
                put_placement(&mut out, &g.placement);
                put_entries(&mut out, &g.local);
            }
            Msg::Failed(why) => {
                out.push(K_FAILED);
                let mut w = why.as_str();
                while w.len() > 4096 {
                    let mut cut = 4096;
                    while !w.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    w = &w[..cut];
                }
                out.extend_from_slice(w.as_bytes());
            }
            Msg::Report(r) => {
                out.push(K_REPORT);
                out.extend_from_slice(&r.host.to_le_bytes());
                out.extend_from_slice(&r.ranks.to_le_bytes());
                put_addr(&mut out, r.info.directory);
                put_str(&mut out, &r.info.label);
            }
            Msg::Placement(p) => {
                out.push(K_PLACEMENT);
                put_placement(&mut out, p);
            }
        }
        let len = (out.len() - 4) as u32;
        out[..4].copy_from_slice(&len.to_le_bytes());
        out
    }

    /// Decodes a frame body (after its length prefix).
    pub fn decode(b: &[u8]) -> Result<Msg, WireError> {
        let mut r = Reader { b, at: 0 };
        let kind = r.u8()?;
        let msg = match kind {
            K_REGISTER => {
                r.version()?;
                let token = r.token()?;
                let size = r.u32()?;
                let rank = r.u32()?;
                let endpoint = r.endpoint()?;
                Msg::Register { token, size, rank, endpoint }
            }
            K_LOOKUP => {
                r.version()?;
                let token = r.token()?;
                Msg::Lookup { token, from: r.u32()? }
            }
            K_ENTRIES => Msg::Entries(r.entries()?),
            K_GO => {
                let host = r.u16()?;
                let placement = r.placement()?;
                let local = r.entries()?;
                Msg::Go(Go { host, placement, local })
            }
            K_FAILED => {
                let rest = &r.b[r.at..];
                r.at = r.b.len();
                Msg::Failed(String::from_utf8_lossy(rest).into_owned())
            }
            K_REPORT => {
                let host = r.u16()?;
                let ranks = r.u32()?;
                let directory = r.addr()?;
                let label = r.string()?;
                Msg::Report(Report { host, ranks, info: HostInfo { label, directory } })
            }
            K_PLACEMENT => Msg::Placement(r.placement()?),
            k => return Err(WireError::BadReplyKind(k)),
        };
        if r.at != b.len() {
            return Err(WireError::Trailing(b.len() - r.at));
        }
        Ok(msg)
    }
}

/// Splits one whole frame off the front of `buf`: `Ok(Some((body range end, frame len)))`.
/// `Ok(None)` while incomplete; an error when the announced length exceeds `max`.
pub fn frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > max {
        return Err(WireError::TooLong { len: len as u64, max: max as u64 });
    }
    Ok((buf.len() >= 4 + len).then_some(4 + len))
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], WireError> {
        if self.b.len() - self.at < n {
            return Err(WireError::Truncated { need: self.at + n, have: self.b.len() });
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn version(&mut self) -> Result<(), WireError> {
        match self.u16()? {
            DIRECTORY_VERSION => Ok(()),
            v => Err(WireError::BadVersion(v)),
        }
    }
    fn token(&mut self) -> Result<[u8; 16], WireError> {
        let mut t = [0u8; 16];
        t.copy_from_slice(self.take(16)?);
        Ok(t)
    }
    fn addr(&mut self) -> Result<SocketAddr, WireError> {
        let ip: IpAddr = match self.u8()? {
            4 => {
                let s = self.take(4)?;
                Ipv4Addr::new(s[0], s[1], s[2], s[3]).into()
            }
            6 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(self.take(16)?);
                Ipv6Addr::from(o).into()
            }
            f => return Err(WireError::BadFamily(f)),
        };
        Ok(SocketAddr::new(ip, self.u16()?))
    }
    fn string(&mut self) -> Result<String, WireError> {
        let n = self.u16()? as usize;
        if n > MAX_LABEL {
            return Err(WireError::BadHostname);
        }
        let s = self.take(n)?;
        std::str::from_utf8(s).map(str::to_owned).map_err(|_| WireError::BadHostname)
    }
    fn endpoint(&mut self) -> Result<Endpoint, WireError> {
        let (e, used) = Endpoint::decode(&self.b[self.at..])?;
        self.at += used;
        Ok(e)
    }
    fn count(&mut self, min_each: usize) -> Result<usize, WireError> {
        let n = self.u32()? as usize;
        // Every item takes at least `min_each` bytes: a count the rest cannot hold is a lie.
        if n > (self.b.len() - self.at) / min_each.max(1) {
            return Err(WireError::Truncated { need: n * min_each, have: self.b.len() - self.at });
        }
        Ok(n)
    }
    fn entries(&mut self) -> Result<Vec<(u32, Endpoint)>, WireError> {
        let n = self.count(4 + 9)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            let r = self.u32()?;
            v.push((r, self.endpoint()?));
        }
        Ok(v)
    }
    fn placement(&mut self) -> Result<Placement, WireError> {
        let n = self.count(9)?;
        let mut hosts = Vec::with_capacity(n);
        for _ in 0..n {
            let directory = self.addr()?;
            let label = self.string()?;
            hosts.push(HostInfo { label, directory });
        }
        let n = self.count(4)?;
        let mut runs = Vec::with_capacity(n);
        for _ in 0..n {
            runs.push((self.u16()?, self.u16()?));
        }
        Ok(Placement { runs, hosts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(port: u16) -> Endpoint {
        Endpoint { addr: SocketAddr::from(([10, 0, 0, 1], port)), host: "h".into(), shm: None }
    }

    fn all() -> Vec<Msg> {
        let placement = Placement {
            runs: vec![(0, 3), (1, 2), (0, 1)],
            hosts: vec![
                HostInfo { label: "a".into(), directory: SocketAddr::from(([10, 0, 0, 1], 7)) },
                HostInfo { label: "bé".into(), directory: "[::1]:9".parse().unwrap() },
            ],
        };
        vec![
            Msg::Register { token: [7; 16], size: 6, rank: 2, endpoint: ep(5) },
            Msg::Lookup { token: [1; 16], from: 4 },
            Msg::Entries(vec![(0, ep(1)), (5, ep(2))]),
            Msg::Go(Go { host: 1, placement: placement.clone(), local: vec![(3, ep(3))] }),
            Msg::Failed("ranks 3-5 never registered".into()),
            Msg::Report(Report { host: 1, ranks: 2, info: placement.hosts[1].clone() }),
            Msg::Placement(placement),
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for m in all() {
            let f = m.encode();
            assert_eq!(frame_len(&f, MAX_FRAME).unwrap(), Some(f.len()));
            assert_eq!(Msg::decode(&f[4..]).unwrap(), m);
        }
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        for m in all() {
            let f = m.encode();
            // Every truncation fails cleanly (Failed has no structure to truncate).
            if !matches!(m, Msg::Failed(_)) {
                for cut in 0..f.len() - 4 {
                    assert!(Msg::decode(&f[4..4 + cut]).is_err(), "{m:?} cut at {cut}");
                }
            }
            let mut long = f[4..].to_vec();
            long.push(0);
            if !matches!(m, Msg::Failed(_)) {
                assert_eq!(Msg::decode(&long), Err(WireError::Trailing(1)));
            }
        }
        assert_eq!(Msg::decode(&[99]), Err(WireError::BadReplyKind(99)));
        let mut f = Msg::Lookup { token: [0; 16], from: 0 }.encode();
        f[5] = 9;
        assert_eq!(Msg::decode(&f[4..]), Err(WireError::BadVersion(9)));
        // A count larger than the frame could hold is refused before allocating.
        let mut huge = vec![K_ENTRIES];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(Msg::decode(&huge), Err(WireError::Truncated { .. })));
        let big = (MAX_FRAME as u32 + 1).to_le_bytes();
        assert!(frame_len(&big, MAX_FRAME).is_err());
        assert_eq!(frame_len(&[1, 0], MAX_FRAME).unwrap(), None);
    }

    #[test]
    fn placement_runs_compress_and_check() {
        let host_of = [0, 0, 0, 1, 1, 0, 2, 2];
        let runs = Placement::runs_of(&host_of);
        assert_eq!(runs, vec![(0, 3), (1, 2), (0, 1), (2, 2)]);
        let hosts = (0..3)
            .map(|i| HostInfo { label: format!("h{i}"), directory: ep(i as u16).addr })
            .collect();
        let p = Placement { runs, hosts };
        assert_eq!(p.host_of(), host_of);
        assert!(p.check(8).is_ok());
        assert!(p.check(9).is_err());
        let bad = Placement { runs: vec![(3, 8)], hosts: p.hosts.clone() };
        assert!(bad.check(8).is_err());
    }
}
