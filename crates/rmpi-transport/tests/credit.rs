//! The receiver announces the credit it grants in its hello and enforces it: a peer that sends
//! eager frames beyond it is failed before anything of the frame is taken, and the error names
//! it. A fake rank 1 speaks the wire protocol by hand on a real socket to a real rank 0.
//!
//! This binary sets `RMPI_UNEXPECTED_LIMIT` for itself (one eager message of 64 KiB per peer),
//! before any rank starts; no other test lives here.

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

fn data(tag: u64, len: usize) -> Vec<u8> {
    let hdr = FrameHeader { kind: FrameKind::Data, context: 0, tag, len: len as u64 };
    let mut f = hdr.encode().to_vec();
    f.resize(32 + len, tag as u8);
    f
}

fn read_header(s: &mut TcpStream) -> FrameHeader {
    let mut b = [0u8; 32];
    s.read_exact(&mut b).unwrap();
    FrameHeader::decode(&b, u64::MAX).unwrap()
}

#[test]
fn eager_frames_beyond_the_credit_fail_their_sender_and_credit_given_back_is_honoured() {
    // Set once, before any thread of this binary reads the environment.
    std::env::set_var("RMPI_UNEXPECTED_LIMIT", CREDIT.to_string());
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
