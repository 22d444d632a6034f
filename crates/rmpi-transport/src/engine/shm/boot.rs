//! Setting up one host's shared memory: every rank offers a segment in its endpoint; after the
//! exchange the ranks with the same [`HostId`](crate::wire::HostId) form the group, and all map the segment of its
//! leader (the lowest world rank) through `/proc/LEADER/fd/N`. The leader waits until every
//! member has mapped it and then closes its descriptor: from then on the segment has no name
//! and no descriptor anywhere, and the kernel frees it with the last mapping, whatever way the
//! ranks exit.

use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::host::host_id;
use super::lend::lend_from;
use super::segment::{Segment, CMA_NO, CMA_YES};
use super::sys::{self, futex_wait, futex_wake, pidfd_open};
use super::wake::{inbox, Waker};
use super::Group;
use crate::error::{Error, Result};
use crate::token::JobToken;
use crate::wire::{Endpoint, ShmOffer};

/// This rank's offer, made before the endpoint exchange.
#[derive(Debug)]
pub(crate) struct Offer {
    memfd: OwnedFd,
    pub(crate) wire: ShmOffer,
}

impl Offer {
    /// An offer granting each local peer `grant` eager bytes (see `engine/flow.rs`), or `None`
    /// (with the reason logged) when this process cannot share memory.
    pub(crate) fn new(grant: u32) -> Option<Offer> {
        let Some(host) = host_id() else {
            tracing::warn!("shared memory off: /proc does not tell the host identity");
            return None;
        };
        let memfd = match sys::memfd() {
            Ok(fd) => fd,
            Err(e) => {
                tracing::warn!("shared memory off: memfd_create failed: {e}");
                return None;
            }
        };
        let fd = memfd.as_raw_fd() as u32;
        let wire = ShmOffer { host, pid: std::process::id(), segment_fd: fd, grant };
        Some(Offer { memfd, wire })
    }
}

/// The world ranks sharing memory with `rank`, in rank order (`rank` among them), from the
/// exchanged endpoints: those whose offer names the same host.
pub(crate) fn members(rank: usize, endpoints: &[Endpoint]) -> Vec<usize> {
    let m = same_host(rank, endpoints);
    if m.len() < 2 || m.len() > MAX_GROUP {
        Vec::new()
    } else {
        m
    }
}

/// The world ranks whose offer names the same host as `rank`'s (empty without an offer).
fn same_host(rank: usize, endpoints: &[Endpoint]) -> Vec<usize> {
    let Some(mine) = endpoints.get(rank).and_then(|e| e.shm) else { return Vec::new() };
    let same = |e: &Endpoint| e.shm.is_some_and(|o| o.host == mine.host);
    (0..endpoints.len()).filter(|r| same(&endpoints[*r])).collect()
}

/// Most ranks of one host that share a segment. A ring is only brought into memory by its first
/// bytes (a goodbye to a peer never written to is a flag, see `ring.rs`), so the rings cost
/// memory per pair that talks; what grows with the group is a rank's engine state and a pidfd
/// per local peer (see `docs/shared-memory.md`, "Memory per rank"). Beyond it, TCP.
pub(crate) const MAX_GROUP: usize = 256;

/// Maps the group's segment and sets up wake-ups and death watches. `None` when no other rank
/// shares this host.
pub(crate) fn join(
    offer: Offer,
    token: JobToken,
    rank: usize,
    endpoints: &[Endpoint],
    deadline: Instant,
) -> Result<Option<Group>> {
    let members = members(rank, endpoints);
    let host = same_host(rank, endpoints);
    if host.len() > MAX_GROUP && host.first() == Some(&rank) {
        // Every member sees the same table and decides the same; the lowest says why.
        tracing::warn!(
            "shared memory off: {} ranks on this host, more than {MAX_GROUP} (every rank keeps \
             state for each local peer); they use TCP",
            host.len()
        );
    }
    let Some(me) = members.iter().position(|r| *r == rank) else { return Ok(None) };
    let n = members.len();
    let leader = members[0];
    let fail = |msg: String| Error::Bootstrap { rank, msg };
    let opened;
    let fd = if leader == rank {
        offer.memfd.as_fd()
    } else {
        let Some(o) = endpoints[leader].shm else { return Ok(None) };
        let path = format!("/proc/{}/fd/{}", o.pid, o.segment_fd);
        opened = OpenOptions::new().read(true).write(true).open(&path).map_err(|e| {
            fail(format!(
                "opening the shared-memory segment of rank {leader} on {} ({path}): {e} \
                 (set RMPI_SHM=0 to use TCP between local ranks)",
                endpoints[leader].host
            ))
        })?;
        opened.as_fd()
    };
    let seg = Segment::map(fd, n).map_err(|e| {
        fail(format!(
            "mapping the shared-memory segment of rank {leader} ({} bytes for {n} local ranks): \
             {e} (set RMPI_SHM=0 to use TCP between local ranks)",
            super::segment::Layout::new(n).len
        ))
    })?;
    let inbox = inbox(token, rank)
        .map_err(|e| Error::io(format!("rank {rank}: binding its wake socket"), e))?;
    let waker = Waker::new(token, &members)
        .map_err(|e| Error::io(format!("rank {rank}: creating its wake socket"), e))?;
    // Peers may read this rank's memory (lent payloads), and probe that they can.
    let lend = lend_wanted();
    if lend {
        let _ = sys::allow_any_reader();
    }
    let probe = &seg.ctl(me).probe;
    probe.store(probe.as_ptr() as u64, Ordering::Release);
    seg.ctl(me).attached.store(1, Ordering::Release);
    seg.header().attached.fetch_add(1, Ordering::AcqRel);
    futex_wake(&seg.header().attached);
    if leader == rank {
        wait_all_attached(&seg, n, deadline).map_err(|missing| {
            let names: Vec<String> = missing
                .iter()
                .map(|i| format!("{} ({})", members[*i], endpoints[members[*i]].host))
                .collect();
            fail(format!("local ranks {} never mapped the shared-memory segment", names.join(", ")))
        })?;
    }
    // The descriptor closes here (ours, or the leader's once everyone has mapped the segment).
    drop(offer);
    let pids: Vec<u32> = members.iter().map(|r| endpoints[*r].shm.map_or(0, |o| o.pid)).collect();
    let grants = members.iter().map(|r| endpoints[*r].shm.map_or(0, |o| u64::from(o.grant)));
    let reads = lend && probe_peer_memory(&seg, me, &pids, deadline);
    seg.ctl(me).cma.store(if reads { CMA_YES } else { CMA_NO }, Ordering::Release);
    let mut pidfds = Vec::new();
    let mut exited = Vec::new();
    for (i, r) in members.iter().enumerate() {
        let Some(o) = endpoints[*r].shm else { continue };
        if i == me || o.pid == std::process::id() {
            continue;
        }
        match pidfd_open(o.pid) {
            Ok(fd) => pidfds.push((*r, fd)),
            // It has finished already (a short program, a slow start here): what it sent is in
            // the segment, and its stream ends after that.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => exited.push(*r),
            Err(e) => return Err(fail(format!("watching local rank {r} (pid {}): {e}", o.pid))),
        }
    }
    let lend_min = if lend { lend_from(seg.layout.ring) } else { 0 };
    let (seg, waker) = (Arc::new(seg), Arc::new(waker));
    let grants = grants.collect();
    Ok(Some(Group { seg, waker, members, me, inbox, pidfds, exited, pids, grants, lend_min }))
}

/// Whether this rank lends and reads large payloads (`RMPI_SHM_CMA`, default on; a value that
/// is not `0` or `1` is named in a warning and counts as the default).
fn lend_wanted() -> bool {
    match std::env::var(crate::env::SHM_CMA).ok().as_deref().map(str::trim) {
        None | Some("1") => true,
        Some("0") => false,
        Some(other) => {
            tracing::warn!("{}={other:?} is neither 0 nor 1; using 1", crate::env::SHM_CMA);
            true
        }
    }
}

/// Whether this rank may read its peers' memory: it reads the probe word of one member (the
/// leader, or member 1 for the leader itself) and checks it holds its own address. The kernel
/// applies one policy to all processes of one user on one host (Yama, seccomp, capabilities),
/// so one probe stands for every peer. Refused (containers, Yama's `ptrace_scope` 2 or 3), the
/// rank says so in its control block and its peers copy through the ring.
fn probe_peer_memory(seg: &Segment, me: usize, pids: &[u32], deadline: Instant) -> bool {
    let other = if me == 0 { 1 } else { 0 };
    // The other member publishes its probe word before it counts itself attached.
    let word = &seg.header().attached;
    while seg.ctl(other).attached.load(Ordering::Acquire) == 0 {
        let seen = word.load(Ordering::Acquire);
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        if seg.ctl(other).attached.load(Ordering::Acquire) == 0 {
            futex_wait(word, seen, left.min(Duration::from_millis(10)));
        }
    }
    let addr = seg.ctl(other).probe.load(Ordering::Acquire);
    let mut got = [0u8; 8];
    match sys::read_process(pids[other], addr, &mut got) {
        Ok(8) if u64::from_ne_bytes(got) == addr => true,
        Ok(n) => {
            tracing::info!("single copy off: probing a local peer's memory read {n} bytes");
            false
        }
        Err(e) => {
            tracing::info!(
                "single copy off: the kernel does not let this rank read its local peers' \
                 memory ({e}); large messages go through the shared segment"
            );
            false
        }
    }
}

/// Waits until all `n` members have mapped `seg`; on the deadline, the group indices missing.
fn wait_all_attached(
    seg: &Segment,
    n: usize,
    deadline: Instant,
) -> std::result::Result<(), Vec<usize>> {
    let word = &seg.header().attached;
    loop {
        let seen = word.load(Ordering::Acquire);
        if seen as usize >= n {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let attached = |i: &usize| seg.ctl(*i).attached.load(Ordering::Acquire) != 0;
            return Err((0..n).filter(|i| !attached(i)).collect());
        }
        futex_wait(word, seen, left.min(std::time::Duration::from_millis(100)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::HostId;

    fn endpoints(n: usize, hosts: usize) -> Vec<Endpoint> {
        (0..n)
            .map(|r| Endpoint {
                addr: "127.0.0.1:1".parse().unwrap(),
                host: format!("h{}", r % hosts),
                shm: Some(ShmOffer {
                    host: HostId {
                        boot_id: [1; 16],
                        net_ns: (r % hosts) as u64,
                        pid_ns: 1,
                        uid: 0,
                    },
                    pid: r as u32 + 100,
                    segment_fd: 3,
                    grant: 1 << 20,
                }),
            })
            .collect()
    }

    #[test]
    fn groups_follow_the_host_identity_up_to_the_cap() {
        let eps = endpoints(6, 2);
        assert_eq!(members(1, &eps), vec![1, 3, 5]);
        assert_eq!(members(4, &eps), vec![0, 2, 4]);
        let mut alone = endpoints(2, 2);
        alone[1].shm = None;
        assert!(members(0, &alone).is_empty());
        assert_eq!(members(7, &endpoints(MAX_GROUP, 1)).len(), MAX_GROUP);
        assert!(members(7, &endpoints(MAX_GROUP + 1, 1)).is_empty());
    }
}
