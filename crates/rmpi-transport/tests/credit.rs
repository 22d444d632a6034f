//! The receiver announces the credit it grants in its hello and enforces it: a peer that sends
//! eager frames beyond it is failed before anything of the frame is taken, and the error names
//! it. Payloads it clears ahead of their receives are charged to the same credit. A fake rank 1
//! speaks the wire protocol by hand on a real socket to a real rank 0.
//!
//! This binary sets `RMPI_UNEXPECTED_LIMIT` for itself (one eager message of 64 KiB per peer),
//! before any rank starts; no test of other settings lives here.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use rmpi_transport::rendezvous::RendezvousServer;
use rmpi_transport::token::JobToken;
use rmpi_transport::wire::{
    Endpoint, FrameHeader, FrameKind, Hello, HelloKind, RendezvousReply, HELLO_LEN,
};
use rmpi_transport::{BootConfig, Communicator, Error};

const T: Duration = Duration::from_secs(10);
/// The credit each peer gets with the limit this binary sets: one 64 KiB message and its header.
const CREDIT: usize = (64 << 10) + 32;

fn hello(kind: HelloKind, token: &[u8; 16], rank: usize) -> [u8; HELLO_LEN] {
    let grant = if kind == HelloKind::Peer { 64 << 20 } else { 0 };
    Hello { kind, token: *token, size: 2, rank: rank as u32, grant }.encode()
}

/// Joins the rendezvous of a 2-rank job as rank 1; returns rank 0's endpoint.
fn fake_join(rv: SocketAddr, token: &[u8; 16]) -> Endpoint {
    let mut s = TcpStream::connect(rv).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut msg = hello(HelloKind::Rendezvous, token, 1).to_vec();
    let mut ep = Vec::new();
    Endpoint { addr: SocketAddr::from(([127, 0, 0, 1], 1)), host: "fakehost".into(), shm: None }
        .encode_into(&mut ep);
    msg.extend_from_slice(&(ep.len() as u32).to_le_bytes());
    msg.extend_from_slice(&ep);
    s.write_all(&msg).unwrap();
    let mut l = [0u8; 4];
    s.read_exact(&mut l).unwrap();
    let mut body = vec![0u8; u32::from_le_bytes(l) as usize];
    s.read_exact(&mut body).unwrap();
    match RendezvousReply::decode(&body, 2).unwrap() {
        RendezvousReply::Table(t) => t[0].clone(),
        RendezvousReply::Failed(why) => panic!("rendezvous refused: {why}"),
    }
}

/// Real rank 0 running `body` in a thread, and fake rank 1's handshaken connection to it.
fn rank0_and_fake_rank1<R: Send + 'static>(
    body: impl FnOnce(Communicator) -> R + Send + 'static,
) -> (thread::JoinHandle<R>, TcpStream) {
    let token = JobToken::generate();
    let server =
        RendezvousServer::bind("127.0.0.1:0".parse().unwrap(), 2, token, T).expect("rendezvous");
    let rv = server.local_addr();
    server.spawn();
    let mut cfg = BootConfig::new(0, 2, token, rv);
    cfg.connect = rmpi_transport::env::Connect::Eager;
    cfg.boot_timeout = Duration::from_secs(5);
    cfg.host_label = Some("real0".into());
    let h = thread::spawn(move || body(Communicator::join(&cfg).expect("rank 0 joins")));
    let ep = fake_join(rv, token.as_bytes());
    let mut s = TcpStream::connect(ep.addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(&hello(HelloKind::Peer, token.as_bytes(), 1)).unwrap();
    let mut b = [0u8; HELLO_LEN];
    s.read_exact(&mut b).unwrap();
    let answer = Hello::decode(&b).unwrap();
    assert_eq!(answer.rank, 0);
    // The grant this binary's limit gives: what the checks below enforce.
    assert_eq!(answer.grant, CREDIT as u64);
    (h, s)
}

/// Sets the limit once, before any thread of this binary reads the environment.
fn set_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::env::set_var("RMPI_UNEXPECTED_LIMIT", CREDIT.to_string()));
}

/// A frame of `kind` with `len` payload bytes of `fill`.
fn frame(kind: FrameKind, (context, tag): (u32, u64), len: usize, fill: u8) -> Vec<u8> {
    let hdr = FrameHeader { kind, context, tag, len: len as u64 };
    let mut f = hdr.encode().to_vec();
    f.resize(32 + len, fill);
    f
}

fn data(tag: u64, len: usize) -> Vec<u8> {
    frame(FrameKind::Data, (0, tag), len, tag as u8)
}

fn read_header(s: &mut TcpStream) -> FrameHeader {
    let mut b = [0u8; 32];
    s.read_exact(&mut b).unwrap();
    FrameHeader::decode(&b, u64::MAX).unwrap()
}

#[test]
fn eager_frames_beyond_the_credit_fail_their_sender_and_credit_given_back_is_honoured() {
    set_limit();
    for run in 0..20 {
        // A flood with no credit: one message fills the credit exactly, then small ones
        // follow that no credit covers. The receive for them must fail, naming the sender.
        let (h, mut s) = rank0_and_fake_rank1(|w| w.recv::<u8>(1, 7));
        s.write_all(&data(0, CREDIT - 32)).unwrap();
        let small = data(7, 1);
        // Until rank 0 closes the connection (a bound, in case it never does).
        for _ in 0..1_000_000 {
            if s.write_all(&small).is_err() {
                break;
            }
        }
        match h.join().unwrap() {
            Err(e @ Error::PeerLost { rank: 1, .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("rank 1 on fakehost")
                        && msg.contains("flow control violated")
                        && msg.contains(&format!("of the {CREDIT} bytes of credit granted")),
                    "run {run}: {msg}"
                );
            }
            other => panic!("run {run}: a frame beyond the credit was taken: {other:?}"),
        }

        // The same frames, with the credit given back in between, are in order.
        let (h, mut s) = rank0_and_fake_rank1(|w| {
            let (big, _) = w.recv::<u8>(1, 0)?;
            let (one, _) = w.recv::<u8>(1, 7)?;
            Ok::<_, Error>((big.len(), one))
        });
        s.write_all(&data(0, CREDIT - 32)).unwrap();
        let credit = read_header(&mut s);
        assert_eq!((credit.kind, credit.tag), (FrameKind::Credit, CREDIT as u64), "run {run}");
        s.write_all(&data(7, 1)).unwrap();
        let got = h.join().unwrap();
        assert_eq!(got.ok(), Some((CREDIT - 32, vec![7u8])), "run {run}");
    }
}

/// An announced message small enough for the credit to cover it (above it, nothing is cleared
/// ahead), and the context a CTS or bulk frame has when it clears ahead / is charged.
const AHEAD_LEN: usize = 40_000;
const AHEAD: u32 = 1;

/// The header of the next frame from rank 0, as (kind, context, tag).
fn next(s: &mut TcpStream) -> (FrameKind, u32, u64) {
    let h = read_header(s);
    (h.kind, h.context, h.tag)
}

#[test]
fn messages_cleared_ahead_are_charged_to_the_credit_and_a_sender_may_wait_for_their_receive() {
    set_limit();
    for run in 0..5 {
        // Rank 0 receives three announced messages one at a time.
        let (h, mut s) = rank0_and_fake_rank1(|w| {
            let mut got = Vec::new();
            for _ in 0..3 {
                let mut buf = vec![0u8; AHEAD_LEN];
                w.recv_into(&mut buf, 1, 5)?;
                got.push(buf);
            }
            Ok::<_, Error>(got)
        });
        let announce =
            FrameHeader { kind: FrameKind::Rts, context: 0, tag: 5, len: AHEAD_LEN as u64 };
        for _ in 0..3 {
            s.write_all(&announce.encode()).unwrap();
        }
        // The first is cleared for its receive; the next one ahead, but not the third: the
        // credit covers one of them.
        assert_eq!(next(&mut s), (FrameKind::Cts, 0, 1), "run {run}");
        assert_eq!(next(&mut s), (FrameKind::Cts, AHEAD, 2), "run {run}");
        s.write_all(&frame(FrameKind::Bulk, (0, 1), AHEAD_LEN, 1)).unwrap();
        // This sender lacks the credit for message 2 (as a real one may, with eager frames on
        // the way) and waits: the receive posted for it clears it plainly, and the third ahead.
        assert_eq!(next(&mut s), (FrameKind::Cts, 0, 2), "run {run}");
        assert_eq!(next(&mut s), (FrameKind::Cts, AHEAD, 3), "run {run}");
        s.write_all(&frame(FrameKind::Bulk, (0, 2), AHEAD_LEN, 2)).unwrap();
        s.write_all(&frame(FrameKind::Bulk, (AHEAD, 3), AHEAD_LEN, 3)).unwrap();
        // Message 3 was charged: its receive gives the credit back. (Its receive may have been
        // posted before it came, and cleared it plainly too.)
        let credit = match next(&mut s) {
            (FrameKind::Cts, 0, 3) => next(&mut s),
            other => other,
        };
        assert_eq!(credit, (FrameKind::Credit, 0, AHEAD_LEN as u64 + 32), "run {run}");
        let got = h.join().unwrap().unwrap();
        for (k, buf) in got.iter().enumerate() {
            assert!(buf.iter().all(|b| *b == k as u8 + 1), "run {run}: message {} damaged", k + 1);
        }

        // A payload cleared ahead that the credit left to its sender does not cover fails the
        // sender, like an eager frame beyond the credit.
        let (h, mut s) = rank0_and_fake_rank1(|w| w.recv::<u8>(1, 5));
        s.write_all(&announce.encode()).unwrap();
        s.write_all(&announce.encode()).unwrap();
        assert_eq!(next(&mut s), (FrameKind::Cts, 0, 1), "run {run}");
        assert_eq!(next(&mut s), (FrameKind::Cts, AHEAD, 2), "run {run}");
        // An eager message nobody receives takes most of the credit; then the charged payload.
        s.write_all(&data(9, AHEAD_LEN)).unwrap();
        let _ = s.write_all(&frame(FrameKind::Bulk, (AHEAD, 2), AHEAD_LEN, 2));
        match h.join().unwrap() {
            Err(e @ Error::PeerLost { rank: 1, .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("flow control violated"), "run {run}: {msg}");
            }
            other => panic!("run {run}: a payload beyond the credit was taken: {other:?}"),
        }
    }
}
