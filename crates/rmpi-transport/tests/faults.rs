//! Bad input and lost peers. A "fake" rank speaks the wire protocol by hand (through the public
//! `wire` module) so that it can misbehave: stray connections, wrong tokens, corrupt frames,
//! absurd lengths, dying mid-message. The real rank must refuse, report and never hang.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use rmpi_transport::rendezvous::RendezvousServer;
use rmpi_transport::token::JobToken;
use rmpi_transport::wire::{
    Endpoint, FrameHeader, FrameKind, Hello, HelloKind, RendezvousReply, HELLO_LEN,
};
use rmpi_transport::{Any, BootConfig, Communicator, Error};

const T: Duration = Duration::from_secs(10);

fn server(size: usize, token: JobToken, deadline: Duration) -> SocketAddr {
    let s = RendezvousServer::bind("127.0.0.1:0".parse().unwrap(), size, token, deadline).unwrap();
    let addr = s.local_addr();
    s.spawn();
    addr
}

fn config(rank: usize, size: usize, token: JobToken, rv: SocketAddr) -> BootConfig {
    let mut c = BootConfig::new(rank, size, token, rv);
    // The fake ranks speak the full mesh's handshake and listen nowhere.
    c.connect = rmpi_transport::env::Connect::Eager;
    c.boot_timeout = Duration::from_secs(5);
    c.host_label = Some(format!("real{rank}"));
    c
}

fn hello(kind: HelloKind, token: &[u8; 16], size: usize, rank: usize) -> [u8; HELLO_LEN] {
    let grant = if kind == HelloKind::Peer { 64 << 20 } else { 0 };
    Hello { kind, token: *token, size: size as u32, rank: rank as u32, grant }.encode()
}

/// Joins the rendezvous as `rank`, advertising `port`; returns the reply.
fn fake_join(
    rv: SocketAddr,
    token: &[u8; 16],
    size: usize,
    rank: usize,
    port: u16,
) -> RendezvousReply {
    let mut s = TcpStream::connect(rv).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut msg = hello(HelloKind::Rendezvous, token, size, rank).to_vec();
    let mut ep = Vec::new();
    Endpoint { addr: SocketAddr::from(([127, 0, 0, 1], port)), host: "fakehost".into(), shm: None }
        .encode_into(&mut ep);
    msg.extend_from_slice(&(ep.len() as u32).to_le_bytes());
    msg.extend_from_slice(&ep);
    s.write_all(&msg).unwrap();
    let mut l = [0u8; 4];
    s.read_exact(&mut l).unwrap();
    let mut body = vec![0u8; u32::from_le_bytes(l) as usize];
    s.read_exact(&mut body).unwrap();
    RendezvousReply::decode(&body, size as u32).unwrap()
}

fn table(r: RendezvousReply) -> Vec<Endpoint> {
    match r {
        RendezvousReply::Table(t) => t,
        RendezvousReply::Failed(why) => panic!("rendezvous refused: {why}"),
    }
}

/// Connects to `ep` as `rank` and completes the handshake.
fn fake_connect(ep: &Endpoint, token: &[u8; 16], size: usize, rank: usize) -> TcpStream {
    let mut s = TcpStream::connect(ep.addr).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(&hello(HelloKind::Peer, token, size, rank)).unwrap();
    let mut b = [0u8; HELLO_LEN];
    s.read_exact(&mut b).unwrap();
    assert_eq!(Hello::decode(&b).unwrap().rank, 0);
    s
}

fn frame(tag: u64, payload: &[u8]) -> Vec<u8> {
    let mut f = FrameHeader { kind: FrameKind::Data, context: 0, tag, len: payload.len() as u64 }
        .encode()
        .to_vec();
    f.extend_from_slice(payload);
    f
}

/// Whether the other side closed the connection without answering.
fn refused(mut s: TcpStream) -> bool {
    s.set_read_timeout(Some(T)).unwrap();
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

/// Starts real rank 0 of a 2-rank job in a thread running `body`, and returns the fake rank 1's
/// view: the token, rank 0's endpoint, and the thread.
fn real_rank0_with_fake_rank1<R: Send + 'static>(
    body: impl FnOnce(Communicator) -> R + Send + 'static,
) -> ([u8; 16], Endpoint, thread::JoinHandle<Result<R, Error>>, SocketAddr) {
    let token = JobToken::generate();
    let rv = server(2, token, T);
    let cfg = config(0, 2, token, rv);
    let h = thread::spawn(move || Communicator::join(&cfg).map(body));
    let t = table(fake_join(rv, token.as_bytes(), 2, 1, 1));
    (*token.as_bytes(), t[0].clone(), h, rv)
}

#[test]
fn stray_and_foreign_connections_are_refused_and_the_job_goes_on() {
    let (token, ep0, h, _) = real_rank0_with_fake_rank1(|w| {
        let (v, st) = w.recv::<u32>(1, 7)?;
        w.finalize()?;
        Ok::<_, Error>((v, st.source))
    });
    // A port scanner: connect, close.
    drop(TcpStream::connect(ep0.addr).unwrap());
    // Something that is not rmpi at all.
    let mut s = TcpStream::connect(ep0.addr).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n.....").unwrap();
    assert!(refused(s), "an HTTP request must be refused");
    // A rank of another job (wrong token).
    let mut s = TcpStream::connect(ep0.addr).unwrap();
    s.write_all(&hello(HelloKind::Peer, &[0xAB; 16], 2, 1)).unwrap();
    assert!(refused(s), "a wrong token must be refused");
    // Right token, wrong world size; out-of-range rank; a rank that must not connect to rank 0.
    for (size, rank) in [(3, 1), (2, 5), (2, 0)] {
        let mut s = TcpStream::connect(ep0.addr).unwrap();
        s.write_all(&hello(HelloKind::Peer, &token, size, rank)).unwrap();
        assert!(refused(s), "size {size} rank {rank} must be refused");
    }
    // A connection that says nothing is left to time out while the real peer gets in.
    let _silent = TcpStream::connect(ep0.addr).unwrap();
    // Now the real rank 1.
    let mut s = fake_connect(&ep0, &token, 2, 1);
    s.write_all(&frame(7, bytemuck::cast_slice(&[1u32, 2, 3]))).unwrap();
    let bye = FrameHeader { kind: FrameKind::Goodbye, context: 0, tag: 0, len: 0 };
    s.write_all(&bye.encode()).unwrap();
    let (v, src) = h.join().unwrap().unwrap().unwrap();
    assert_eq!((v, src), (vec![1, 2, 3], 1));
    // Rank 0 said goodbye too, then closed.
    let mut b = [0u8; 32];
    s.read_exact(&mut b).unwrap();
    assert_eq!(FrameHeader::decode(&b, 0).unwrap().kind, FrameKind::Goodbye);
}

#[test]
fn rendezvous_refuses_wrong_tokens_and_duplicates() {
    let token = JobToken::generate();
    let rv = server(2, token, T);
    assert!(matches!(
        fake_join(rv, &[1; 16], 2, 0, 1),
        RendezvousReply::Failed(w) if w.contains("token")
    ));
    assert!(matches!(
        fake_join(rv, token.as_bytes(), 2, 7, 1),
        RendezvousReply::Failed(w) if w.contains("out of range")
    ));
    // Garbage and silence do not disturb it.
    TcpStream::connect(rv).unwrap().write_all(b"SSH-2.0-OpenSSH\r\n").unwrap();
    let _quiet = TcpStream::connect(rv).unwrap();
    let first = thread::spawn(move || fake_join(rv, token.as_bytes(), 2, 0, 1000));
    thread::sleep(Duration::from_millis(200));
    let dup = fake_join(rv, token.as_bytes(), 2, 0, 1001);
    assert!(matches!(dup, RendezvousReply::Failed(w) if w.contains("already joined")));
    let last = table(fake_join(rv, token.as_bytes(), 2, 1, 1002));
    let first = table(first.join().unwrap());
    assert_eq!(first, last);
    assert_eq!(last[0].addr.port(), 1000);
    assert_eq!(last[1].addr.port(), 1002);
}

#[test]
fn a_rank_that_never_joins_is_named() {
    let token = JobToken::generate();
    let rv = server(3, token, Duration::from_secs(1));
    let t = Instant::now();
    let hs: Vec<_> = (0..2)
        .map(|r| {
            let cfg = config(r, 3, token, rv);
            thread::spawn(move || Communicator::join(&cfg).map(|_| ()))
        })
        .collect();
    for h in hs {
        let e = h.join().unwrap().unwrap_err().to_string();
        assert!(e.contains("never joined") && e.contains(": 2"), "{e}");
    }
    assert!(t.elapsed() < Duration::from_secs(8));
}

#[test]
fn a_rank_that_never_connects_is_named() {
    let token = JobToken::generate();
    let rv = server(3, token, T);
    let hs: Vec<_> = (0..2)
        .map(|r| {
            let mut cfg = config(r, 3, token, rv);
            cfg.boot_timeout = Duration::from_secs(2);
            thread::spawn(move || Communicator::join(&cfg).map(|_| ()))
        })
        .collect();
    // Rank 2 joins the rendezvous with a listener nobody answers on, and never connects.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let _t = fake_join(rv, token.as_bytes(), 3, 2, l.local_addr().unwrap().port());
    for h in hs {
        let e = h.join().unwrap().unwrap_err().to_string();
        assert!(e.contains("ranks 2 never connected") && e.contains("fakehost"), "{e}");
    }
}

fn expect_lost(e: Error, cause: &str) {
    match &e {
        Error::PeerLost { rank: 1, host, cause: c } => {
            assert_eq!(host, "fakehost");
            assert!(c.contains(cause), "cause {c:?} should mention {cause:?}");
        }
        other => panic!("expected PeerLost naming rank 1, got {other}"),
    }
    let msg = e.to_string();
    assert!(msg.contains("rank 1") && msg.contains("fakehost"), "{msg}");
}

#[test]
fn a_peer_that_dies_fails_pending_and_later_operations() {
    let (token, ep0, h, _) = real_rank0_with_fake_rank1(|w| {
        let t = Instant::now();
        let pending = w.recv::<u8>(1, 0).unwrap_err();
        let waited = t.elapsed();
        let any = w.recv::<u8>(Any, Any).unwrap_err();
        let send = w.send(&[1u8], 1, 0).unwrap_err();
        (pending, waited, any, send)
    });
    let s = fake_connect(&ep0, &token, 2, 1);
    thread::sleep(Duration::from_millis(300));
    drop(s); // dies: no goodbye
    let (pending, waited, any, send) = h.join().unwrap().unwrap();
    assert!(waited < Duration::from_secs(3), "noticed after {waited:?}");
    expect_lost(pending, "without a goodbye");
    expect_lost(any, "without a goodbye");
    expect_lost(send, "without a goodbye");
}

#[test]
fn a_peer_that_dies_mid_send_fails_the_send() {
    let (token, ep0, h, _) =
        real_rank0_with_fake_rank1(|w| w.send(&vec![0u8; 64 << 20], 1, 0).unwrap_err());
    let mut s = fake_connect(&ep0, &token, 2, 1);
    // Above the eager limit: announced first, the payload only once cleared.
    let rts = read_header(&mut s);
    assert_eq!((rts.kind, rts.len), (FrameKind::Rts, 64 << 20));
    s.write_all(&control(FrameKind::Cts, 1)).unwrap();
    let bulk = read_header(&mut s);
    assert_eq!((bulk.kind, bulk.tag, bulk.len), (FrameKind::Bulk, 1, 64 << 20));
    let mut b = vec![0u8; 1 << 20];
    s.read_exact(&mut b).unwrap();
    drop(s);
    let e = h.join().unwrap().unwrap();
    assert!(matches!(e, Error::PeerLost { rank: 1, .. }), "{e}");
}

fn read_header(s: &mut TcpStream) -> FrameHeader {
    let mut b = [0u8; 32];
    s.read_exact(&mut b).unwrap();
    FrameHeader::decode(&b, u64::MAX).unwrap()
}

fn control(kind: FrameKind, tag: u64) -> [u8; 32] {
    FrameHeader { kind, context: 0, tag, len: 0 }.encode()
}

/// Real rank 0 (with no message limit) running `body` in a thread, and the connection of the
/// fake rank 1 to it.
fn unlimited_rank0_with_fake_rank1<R: Send + 'static>(
    body: impl FnOnce(Communicator) -> R + Send + 'static,
) -> (thread::JoinHandle<R>, TcpStream) {
    let token = JobToken::generate();
    let rv = server(2, token, T);
    let mut cfg = config(0, 2, token, rv);
    cfg.max_message = u64::MAX;
    let h = thread::spawn(move || body(Communicator::join(&cfg).unwrap()));
    let t = table(fake_join(rv, token.as_bytes(), 2, 1, 1));
    (h, fake_connect(&t[0], token.as_bytes(), 2, 1))
}

fn vm_rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn an_announced_60_gib_message_costs_nothing_until_received_and_its_lie_fails_that_peer() {
    const LIE: u64 = 60 << 30;
    let (h, mut s) = unlimited_rank0_with_fake_rank1(|w| {
        // Behind the announcement, a small message on another tag still arrives.
        let (v, _) = w.recv::<u8>(1, 5).unwrap();
        let probed = w.probe(Some(1), Some(3)).unwrap().len;
        let rss = vm_rss_kib();
        let e = w.recv::<u8>(1, 3).unwrap_err();
        (v, probed, rss, e)
    });
    let rts = FrameHeader { kind: FrameKind::Rts, context: 0, tag: 3, len: LIE };
    s.write_all(&rts.encode()).unwrap();
    s.write_all(&frame(5, b"after")).unwrap();
    // The receive for tag 3 clears it; the payload that follows claims 60 GiB and never comes.
    let cts = read_header(&mut s);
    assert_eq!((cts.kind, cts.tag), (FrameKind::Cts, 1));
    let bulk = FrameHeader { kind: FrameKind::Bulk, context: 0, tag: 1, len: LIE };
    s.write_all(&bulk.encode()).unwrap();
    s.write_all(&[0u8; 4096]).unwrap();
    drop(s);
    let (v, probed, rss, e) = h.join().unwrap();
    assert_eq!(v, b"after");
    assert_eq!(probed as u64, LIE);
    assert!(rss < 1 << 20, "RSS {rss} KiB while a 60 GiB message was announced");
    // Either the buffer could not be had or the peer died before filling it: that peer is
    // named, and this process lives on with its memory.
    expect_lost(e, "");
    assert!(vm_rss_kib() < 1 << 20);
}

#[test]
fn a_sender_lost_between_announcing_and_sending_fails_the_receive() {
    let (token, ep0, h, _) = real_rank0_with_fake_rank1(|w| {
        let probed = w.probe(Some(1), None).unwrap();
        let e = w.recv::<u8>(1, 0).unwrap_err();
        (probed.len, e)
    });
    let mut s = fake_connect(&ep0, &token, 2, 1);
    let rts = FrameHeader { kind: FrameKind::Rts, context: 0, tag: 0, len: 1 << 20 };
    s.write_all(&rts.encode()).unwrap();
    assert_eq!(read_header(&mut s).kind, FrameKind::Cts);
    drop(s);
    let (len, e) = h.join().unwrap().unwrap();
    assert_eq!(len, 1 << 20);
    expect_lost(e, "without a goodbye");
}

#[test]
fn payloads_nobody_announced_or_cleared_are_protocol_errors() {
    for (name, frames) in [
        (
            "unannounced payload",
            vec![FrameHeader { kind: FrameKind::Bulk, context: 0, tag: 1, len: 8 }],
        ),
        (
            "clear to send for nothing",
            vec![FrameHeader { kind: FrameKind::Cts, context: 0, tag: 4, len: 0 }],
        ),
    ] {
        let (token, ep0, h, _) = real_rank0_with_fake_rank1(|w| w.recv::<u8>(1, 9).unwrap_err());
        let mut s = fake_connect(&ep0, &token, 2, 1);
        for f in frames {
            s.write_all(&f.encode()).unwrap();
        }
        s.write_all(&[0u8; 8]).unwrap();
        let e = h.join().unwrap().unwrap();
        eprintln!("{name}: {e}");
        expect_lost(e, "never announced");
        drop(s);
    }
}

#[test]
fn corrupt_frames_are_protocol_errors() {
    let mut bad_magic = frame(0, &[]);
    bad_magic[0] ^= 0xff;
    let mut bad_kind = frame(0, &[]);
    bad_kind[2] = 9;
    let absurd =
        FrameHeader { kind: FrameKind::Data, context: 0, tag: 0, len: 1 << 62 }.encode().to_vec();
    for (name, bytes, cause) in [
        ("bad magic", bad_magic, "corrupt frame header"),
        ("bad kind", bad_kind, "unknown frame kind"),
        ("absurd length", absurd, "exceeds the limit"),
    ] {
        let (token, ep0, h, _) = real_rank0_with_fake_rank1(|w| w.recv::<u8>(1, 0).unwrap_err());
        let mut s = fake_connect(&ep0, &token, 2, 1);
        s.write_all(&bytes).unwrap();
        let e = h.join().unwrap().unwrap();
        eprintln!("{name}: {e}");
        expect_lost(e, cause);
        drop(s);
    }
}

#[test]
fn the_message_limit_is_configurable() {
    let token = JobToken::generate();
    let rv = server(2, token, T);
    let mut cfg = config(0, 2, token, rv);
    cfg.max_message = 1024;
    let h = thread::spawn(move || {
        let w = Communicator::join(&cfg).unwrap();
        let small = w.recv::<u8>(1, 0).map(|(v, _)| v.len());
        let big = w.recv::<u8>(1, 0).unwrap_err();
        (small, big)
    });
    let t = table(fake_join(rv, token.as_bytes(), 2, 1, 1));
    let mut s = fake_connect(&t[0], token.as_bytes(), 2, 1);
    s.write_all(&frame(0, &[7u8; 1024])).unwrap();
    s.write_all(&frame(0, &[7u8; 1025])).unwrap();
    let (small, big) = h.join().unwrap();
    assert_eq!(small.unwrap(), 1024);
    expect_lost(big, "1025 exceeds the limit of 1024");
}

#[test]
fn a_collective_wait_names_the_rank_that_died_not_one_that_finalized() {
    // Rank 2 crashes, then rank 1 finalizes (as a survivor would after its own error): rank 0,
    // waiting on rank 1 in a collective, must name rank 2.
    let token = JobToken::generate();
    let rv = server(3, token, T);
    let cfg = config(0, 3, token, rv);
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let h = thread::spawn(move || {
        let w = Communicator::join(&cfg).unwrap();
        go_rx.recv().unwrap();
        w.collective_channel().recv::<u8>(1, None).unwrap_err()
    });
    let tok = *token.as_bytes();
    let t1 = thread::spawn(move || table(fake_join(rv, &tok, 3, 1, 1)));
    let t = table(fake_join(rv, &tok, 3, 2, 2));
    t1.join().unwrap();
    let mut s1 = fake_connect(&t[0], &tok, 3, 1);
    let s2 = fake_connect(&t[0], &tok, 3, 2);
    drop(s2); // crash
    thread::sleep(Duration::from_millis(50));
    let bye = FrameHeader { kind: FrameKind::Goodbye, context: 0, tag: 0, len: 0 };
    s1.write_all(&bye.encode()).unwrap();
    drop(s1);
    thread::sleep(Duration::from_millis(200));
    go_tx.send(()).unwrap();
    let e = h.join().unwrap();
    assert!(
        matches!(&e, Error::PeerLost { rank: 2, cause, .. } if cause.contains("without a goodbye")),
        "{e}"
    );
}

#[test]
fn a_collective_send_fails_when_another_member_dies() {
    // Rank 0 is blocked sending a large collective message to rank 1 (which does not read) when
    // rank 2 crashes: the send fails at once, naming rank 2, and rank 0's buffer is released.
    let token = JobToken::generate();
    let rv = server(3, token, T);
    let cfg = config(0, 3, token, rv);
    let h = thread::spawn(move || {
        let w = Communicator::join(&cfg).unwrap();
        let t = Instant::now();
        let e = w.collective_channel().send(&vec![7u8; 64 << 20], 1, 0).unwrap_err();
        let took = t.elapsed();
        drop(w); // finalize: finishes the frame to rank 1 once it reads
        (e, took)
    });
    let tok = *token.as_bytes();
    let t1 = thread::spawn(move || table(fake_join(rv, &tok, 3, 1, 1)));
    let t = table(fake_join(rv, &tok, 3, 2, 2));
    t1.join().unwrap();
    let mut s1 = fake_connect(&t[0], &tok, 3, 1); // alive, not reading yet
    let s2 = fake_connect(&t[0], &tok, 3, 2);
    thread::sleep(Duration::from_millis(300));
    drop(s2);
    // Rank 1 reads again only later, as a real survivor would when it leaves: rank 0's error must
    // not wait for that.
    let reader = thread::spawn(move || {
        thread::sleep(Duration::from_secs(1));
        let _ = std::io::copy(&mut s1, &mut std::io::sink());
    });
    let (e, took) = h.join().unwrap();
    reader.join().unwrap();
    assert!(matches!(&e, Error::PeerLost { rank: 2, .. }), "{e}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

#[test]
fn a_rank_that_panics_is_lost_not_finalized() {
    let token = JobToken::generate();
    let rv = server(2, token, T);
    let (c0, c1) = (config(0, 2, token, rv), config(1, 2, token, rv));
    let h1 = thread::spawn(move || {
        let w = Communicator::join(&c1).unwrap();
        w.send(&[7u8], 0, 1).unwrap();
        panic!("rank 1 fails on purpose");
    });
    let w = Communicator::join(&c0).unwrap();
    assert_eq!(w.recv::<u8>(1, 1).unwrap().0, vec![7]);
    assert!(h1.join().is_err(), "rank 1 panicked");
    match w.recv::<u8>(1, 2).unwrap_err() {
        Error::PeerLost { rank: 1, cause, .. } => {
            assert!(cause.contains("panicked"), "{cause}")
        }
        other => panic!("expected rank 1 lost, got {other}"),
    }
}

#[test]
fn a_rendezvous_that_drips_its_reply_cannot_stretch_the_boot_deadline() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let rv = l.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut hello = [0u8; HELLO_LEN];
        s.read_exact(&mut hello).unwrap();
        // A plausible length, then one byte every 200 ms: each read makes progress.
        let _ = s.write_all(&1000u32.to_le_bytes());
        for _ in 0..100 {
            if s.write_all(b"x").is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(200));
        }
    });
    let mut cfg = config(0, 2, JobToken::generate(), rv);
    cfg.boot_timeout = Duration::from_secs(1);
    let t0 = Instant::now();
    let e = Communicator::join(&cfg).unwrap_err().to_string();
    let took = t0.elapsed();
    assert!(e.contains("rendezvous"), "{e}");
    // The boot deadline plus the one-second reply margin, with room for a loaded machine.
    assert!(took < Duration::from_secs(5), "booted for {took:?}: {e}");
    server.join().unwrap();
}

#[test]
fn a_header_claiming_more_memory_than_there_is_fails_that_peer_not_the_process() {
    // The limit allows it (none is set), no machine can have it: the lying peer is lost, this
    // process (the test binary itself) lives on and says why. An eager frame that long is far
    // beyond the credit, so the receiver refuses it before allocating anything (a bulk frame
    // of such a length is the announced-60-GiB test's case).
    let (h, mut s) = unlimited_rank0_with_fake_rank1(|w| w.recv::<u8>(1, 0).unwrap_err());
    // The longest length there is: its cost (length plus header) must not wrap.
    let lie = FrameHeader { kind: FrameKind::Data, context: 0, tag: 0, len: u64::MAX };
    s.write_all(&lie.encode()).unwrap();
    let e = h.join().unwrap();
    expect_lost(e, "flow control violated");
    drop(s);
}

#[test]
fn a_missing_interface_is_reported_before_waiting_for_the_rendezvous() {
    // Nothing listens at the rendezvous: a bad RMPI_IFACE must not wait out the boot deadline.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let rv = l.local_addr().unwrap();
    drop(l);
    let mut cfg = config(0, 2, JobToken::generate(), rv);
    cfg.boot_timeout = Duration::from_secs(30);
    cfg.advertise = rmpi_transport::addr::AddrSelector::parse("nosuchif0").unwrap();
    let t0 = Instant::now();
    let e = Communicator::join(&cfg).unwrap_err();
    assert!(matches!(&e, Error::Env { var: "RMPI_IFACE", .. }), "{e}");
    assert!(e.to_string().contains("nosuchif0"), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(5), "took {:?}", t0.elapsed());
}

#[test]
fn a_receive_let_go_of_after_clearing_its_message_leaves_it_for_the_next_receive() {
    use std::sync::mpsc;
    let (cleared_tx, cleared) = mpsc::channel::<()>();
    let (dropped, dropped_rx) = mpsc::channel::<()>();
    let (h, mut s) = unlimited_rank0_with_fake_rank1(move |w| {
        let mut r = w.irecv::<u8>(1, 0).unwrap();
        // Making progress until the fake has read its clear-to-send.
        while cleared.try_recv().is_err() {
            r = r.wait_timeout(Duration::from_millis(5)).unwrap().unwrap_err();
        }
        drop(r);
        dropped.send(()).unwrap();
        w.recv::<u8>(1, 0).map(|(v, _)| v)
    });
    let rts = FrameHeader { kind: FrameKind::Rts, context: 0, tag: 0, len: 100_000 };
    s.write_all(&rts.encode()).unwrap();
    assert_eq!(read_header(&mut s).kind, FrameKind::Cts);
    cleared_tx.send(()).unwrap();
    dropped_rx.recv_timeout(T).unwrap();
    let bulk = FrameHeader { kind: FrameKind::Bulk, context: 0, tag: 1, len: 100_000 };
    s.write_all(&bulk.encode()).unwrap();
    s.write_all(&[9u8; 100_000]).unwrap();
    let v = h.join().unwrap().unwrap();
    assert_eq!(v, vec![9u8; 100_000]);
    drop(s);
}
