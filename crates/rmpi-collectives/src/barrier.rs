//! Barrier (dissemination) and the optional consistency check run before a call.

use rmpi_transport::{Error, Result};

use crate::call::{Call, OpKind, Sig};

/// Dissemination barrier: ⌈log2 p⌉ rounds; in round k rank r signals r + 2^k and waits for
/// r - 2^k.
pub(crate) fn barrier(c: &Call) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    let mut dist = 1;
    while dist < p {
        c.sendrecv::<u8>(&[], (r + dist) % p, &mut [], (r + p - dist) % p)?;
        dist <<= 1;
    }
    Ok(())
}

/// Linear (fan-in, fan-out): every rank tells rank 0 it has arrived and waits for rank 0's
/// release; rank 0 waits for all arrivals (posted at once), then releases everybody at once.
/// Two hops like dissemination on 3-4 ranks, but every rank other than 0 sends one message and
/// waits once, which suits ranks that share cores or sleep while they wait.
pub(crate) fn linear(c: &Call) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    if p == 1 {
        return Ok(());
    }
    if r == 0 {
        let others: Vec<usize> = (1..p).collect();
        let recvs: Vec<(&mut [u8], usize)> = others.iter().map(|&s| (&mut [][..], s)).collect();
        c.exchange_many::<u8>(recvs, &[])?;
        c.send_all::<u8>(&[], &others)
    } else {
        c.sendrecv::<u8>(&[], 0, &mut [], 0)
    }
}

/// Flat: every rank signals every other rank at once and waits for the p − 1 signals, posted
/// at once. One hop and one wait per rank (dissemination needs ⌈log2 p⌉ of each), for
/// p(p − 1) empty messages in all: a fit for few ranks.
pub(crate) fn flat(c: &Call) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    if p == 1 {
        return Ok(());
    }
    let recvs: Vec<(&mut [u8], usize)> = (1..p).map(|i| (&mut [][..], (r + p - i) % p)).collect();
    let sends: Vec<(&[u8], usize)> = (1..p).map(|i| (&[][..], (r + i) % p)).collect();
    c.exchange_many::<u8>(recvs, &sends)
}

const SIG_WORDS: usize = 4;
/// A check message: the sender's signature, then whether a disagreement is known (1) and, if
/// so, the two ranks and their signatures.
const MSG_WORDS: usize = SIG_WORDS + 1 + 2 * (1 + SIG_WORDS);

fn words(s: &Sig) -> [u64; SIG_WORDS] {
    [s.seq, s.kind as u64, s.root as u64, s.bytes]
}

fn describe(w: &[u64]) -> String {
    let kind = crate::call::OpKind::from_u8(w[1] as u8);
    match kind {
        Some(kind) => Sig { seq: w[0], kind, root: w[2] as usize, bytes: w[3] }.describe(),
        None => format!("an unknown operation {}", w[1]),
    }
}

/// Checks that every rank is in the same call (operation, root and byte count): a comparison
/// with the left neighbour, then a dissemination OR of "found a difference" that also carries
/// the first difference found, so every rank reports the same two ranks.
pub(crate) fn consistency(c: &Call) -> Result<()> {
    let (p, r) = (c.size, c.rank);
    if p == 1 {
        return Ok(());
    }
    let chk = c.sub(OpKind::Check);
    let mine = words(&c.sig);
    let mut msg = [0u64; MSG_WORDS];
    msg[..SIG_WORDS].copy_from_slice(&mine);
    let mut got = [0u64; MSG_WORDS];
    let left = (r + p - 1) % p;
    chk.sendrecv(&msg, (r + 1) % p, &mut got, left)?;
    if got[..SIG_WORDS] != mine {
        msg[SIG_WORDS] = 1;
        let d = &mut msg[SIG_WORDS + 1..];
        d[0] = left as u64;
        d[1..=SIG_WORDS].copy_from_slice(&got[..SIG_WORDS]);
        d[SIG_WORDS + 1] = r as u64;
        d[SIG_WORDS + 2..].copy_from_slice(&mine);
    }
    let mut dist = 1;
    while dist < p {
        chk.sendrecv(&msg, (r + dist) % p, &mut got, (r + p - dist) % p)?;
        if msg[SIG_WORDS] == 0 && got[SIG_WORDS] == 1 {
            msg[SIG_WORDS..].copy_from_slice(&got[SIG_WORDS..]);
        }
        dist <<= 1;
    }
    if msg[SIG_WORDS] == 1 {
        let d = &msg[SIG_WORDS + 1..];
        return Err(Error::Mismatch {
            rank: r,
            msg: format!(
                "ranks are in different collective calls: rank {} is in {}, rank {} is in {}",
                d[0],
                describe(&d[1..=SIG_WORDS]),
                d[SIG_WORDS + 1],
                describe(&d[SIG_WORDS + 2..])
            ),
        });
    }
    Ok(())
}
