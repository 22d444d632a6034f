//! Connections on demand (`RMPI_CONNECT=lazy`) over real loopback TCP: dials that cross keep
//! one ordered stream per pair, a rank holds sockets only for the peers it talks to, a receive
//! from a peer that died unseen fails naming it, and on the wire the lower rank's dial wins.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use rmpi_transport::env::Connect;
use rmpi_transport::rendezvous::RendezvousServer;
use rmpi_transport::token::JobToken;
use rmpi_transport::wire::{
    Endpoint, FrameHeader, FrameKind, Hello, HelloKind, RendezvousReply, HELLO_LEN,
};
use rmpi_transport::{BootConfig, Communicator, Error};

const T: Duration = Duration::from_secs(20);

fn server(size: usize, token: JobToken) -> SocketAddr {
    let s = RendezvousServer::bind("127.0.0.1:0".parse().unwrap(), size, token, T).unwrap();
    let addr = s.local_addr();
    s.spawn();
    addr
}

/// A lazily connecting rank over TCP only.
fn lazy(rank: usize, size: usize, token: JobToken, rv: SocketAddr) -> BootConfig {
    let mut c = BootConfig::new(rank, size, token, rv);
    c.connect = Connect::Lazy;
    c.shm = false;
    c.boot_timeout = T;
    c.host_label = Some(format!("lazy{rank}"));
    c
}

/// Runs `size` real ranks as threads, each with `cfg` adjusted by `tune`.
fn run<R: Send + 'static>(
    size: usize,
    tune: impl Fn(&mut BootConfig) + Send + Sync + 'static,
    body: impl Fn(Communicator) -> Result<R, Error> + Send + Sync + 'static,
) -> Vec<R> {
    let token = JobToken::generate();
    let rv = server(size, token);
    let body = Arc::new(body);
    let tune = Arc::new(tune);
    let hs: Vec<_> = (0..size)
        .map(|r| {
            let (body, tune) = (body.clone(), tune.clone());
            thread::spawn(move || {
                let mut cfg = lazy(r, size, token, rv);
                tune(&mut cfg);
                let w = Communicator::join(&cfg)?;
                let out = body(w.clone())?;
                w.finalize()?;
                Ok::<_, Error>(out)
            })
        })
        .collect();
    hs.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
}

#[test]
fn dials_that_cross_keep_every_senders_order() {
    const N: usize = 6;
    const MSGS: u32 = 150;
    for _round in 0..3 {
        let got = run(
            N,
            |_| {},
            |w| {
                let me = w.rank();
                // Everyone sends to everyone at once: every pair dials both ways.
                let mut reqs = Vec::new();
                for i in 0..MSGS {
                    for peer in (0..N).filter(|p| *p != me) {
                        reqs.push(w.isend(&[me as u32, i], peer, u64::from(i % 3))?);
                    }
                }
                let mut seen = 0;
                for peer in (0..N).filter(|p| *p != me) {
                    for tag in 0..3u64 {
                        let mut next = tag as u32;
                        while next < MSGS {
                            let (v, st) = w.recv::<u32>(peer, tag)?;
                            assert_eq!((v, st.source), (vec![peer as u32, next], peer));
                            next += 3;
                            seen += 1;
                        }
                    }
                }
                for r in reqs {
                    r.wait()?;
                }
                Ok(seen)
            },
        );
        assert_eq!(got, vec![(N - 1) * MSGS as usize; N]);
    }
}

/// Established TCP connections whose local port is in `ports` (the accepting ends of the ranks'
/// connections), from the kernel's tables (a set: a table read while it changes may list a
/// socket twice).
fn established_to(ports: std::ops::RangeInclusive<u16>) -> std::collections::BTreeSet<String> {
    let mut n = std::collections::BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (f.get(1), f.get(3)) else { continue };
            let port = local.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            if *state == "01" && port.is_some_and(|p| ports.contains(&p)) {
                n.insert(format!("{} -> {}", f[1], f[2]));
            }
        }
    }
    n
}

#[test]
fn a_rank_holds_sockets_only_for_the_peers_it_talks_to() {
    const N: usize = 8;
    // Listening ports below the ephemeral range, so that no other socket of this process has a
    // local port among them by chance.
    let eph = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let eph: u16 = eph.split_whitespace().next().unwrap().parse().unwrap();
    let lo = eph.min(32_768) - 200;
    let ports = lo..=lo + 40;
    let range = (lo, lo + 40);
    let all_up = Arc::new(Barrier::new(N + 1));
    let counted = Arc::new(Barrier::new(N + 1));
    let (up, done) = (all_up.clone(), counted.clone());
    let h = thread::spawn(move || {
        run(
            N,
            move |c| c.port_range = Some(range),
            move |w| {
                // A ring, both ways: each rank talks to its two neighbours only.
                let (me, n) = (w.rank(), w.size());
                let (right, left) = ((me + 1) % n, (me + n - 1) % n);
                let (v, _) = w.sendrecv::<u32, u32>(&[me as u32], right, 1, left, 1)?;
                assert_eq!(v, vec![left as u32]);
                let (v, _) = w.sendrecv::<u32, u32>(&[me as u32], left, 2, right, 2)?;
                assert_eq!(v, vec![right as u32]);
                up.wait();
                done.wait();
                Ok(())
            },
        )
    });
    all_up.wait();
    let n = established_to(ports);
    counted.wait();
    h.join().unwrap();
    // One connection per neighbouring pair; the full mesh would hold N * (N - 1) / 2 = 28.
    assert_eq!(n.len(), N, "established connections between the ranks: {n:?}");
}

fn hello(token: &[u8; 16], size: usize, rank: usize) -> [u8; HELLO_LEN] {
    let (size, rank) = (size as u32, rank as u32);
    // The credit this hand-made rank grants: plenty, so the real ranks send to it eagerly.
    Hello { kind: HelloKind::Peer, token: *token, size, rank, grant: 64 << 20 }.encode()
}

/// Joins the rendezvous by hand as `rank`, advertising `port`; returns the table.
fn join_by_hand(
    rv: SocketAddr,
    token: JobToken,
    size: usize,
    rank: usize,
    port: u16,
) -> Vec<Endpoint> {
    let mut s = TcpStream::connect(rv).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let rv_hello = Hello {
        kind: HelloKind::Rendezvous,
        token: *token.as_bytes(),
        size: size as u32,
        rank: rank as u32,
        grant: 0,
    };
    let mut msg = rv_hello.encode().to_vec();
    let mut ep = Vec::new();
    Endpoint { addr: SocketAddr::from(([127, 0, 0, 1], port)), host: "byhand".into(), shm: None }
        .encode_into(&mut ep);
    msg.extend_from_slice(&(ep.len() as u32).to_le_bytes());
    msg.extend_from_slice(&ep);
    s.write_all(&msg).unwrap();
    let mut l = [0u8; 4];
    s.read_exact(&mut l).unwrap();
    let mut body = vec![0u8; u32::from_le_bytes(l) as usize];
    s.read_exact(&mut body).unwrap();
    match RendezvousReply::decode(&body, size as u32) {
        Ok(RendezvousReply::Table(t)) => t,
        other => panic!("the rendezvous did not answer with a table: {other:?}"),
    }
}

#[test]
fn a_receive_from_a_peer_that_died_unseen_fails_naming_it() {
    let token = JobToken::generate();
    let rv = server(2, token);
    let cfg = lazy(0, 2, token, rv);
    let h = thread::spawn(move || {
        let w = Communicator::join(&cfg)?;
        let recv = w.recv::<u32>(1, 7).map(|_| ());
        let send = w.send(&[1u32], 1, 7);
        Ok::<_, Error>((recv, send))
    });
    // Rank 1 advertises a port where nothing listens any more: it is gone.
    let gone = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _ = join_by_hand(rv, token, 2, 1, gone);
    let (recv, send) = h.join().unwrap().unwrap();
    for e in [recv.unwrap_err(), send.unwrap_err()] {
        match &e {
            Error::PeerLost { rank: 1, host, cause } => {
                assert_eq!(host, "byhand");
                assert!(cause.contains("refused"), "{cause}");
            }
            other => panic!("expected rank 1 lost, got {other}"),
        }
    }
}

/// Whether the other side closed `s` without a byte.
fn closed_unanswered(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(T)).unwrap();
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

fn data_and_goodbye(tag: u64, payload: &[u32]) -> Vec<u8> {
    let bytes: &[u8] = bytemuck::cast_slice(payload);
    let hdr = FrameHeader { kind: FrameKind::Data, context: 0, tag, len: bytes.len() as u64 };
    let mut f = hdr.encode().to_vec();
    f.extend_from_slice(bytes);
    let bye = FrameHeader { kind: FrameKind::Goodbye, context: 0, tag: 0, len: 0 };
    f.extend_from_slice(&bye.encode());
    f
}

/// A real rank `real` and a hand-driven rank `1 - real` that dial each other at once.
fn crossing_dials(real: usize) {
    let fake = 1 - real;
    let token = JobToken::generate();
    let rv = server(2, token);
    let cfg = lazy(real, 2, token, rv);
    let h = thread::spawn(move || {
        let w = Communicator::join(&cfg)?;
        // Dials the fake rank.
        let (v, _) = w.recv::<u32>(fake, 7)?;
        w.finalize()?;
        Ok::<_, Error>(v)
    });
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let table = join_by_hand(rv, token, 2, fake, l.local_addr().unwrap().port());
    let tok = *token.as_bytes();
    // The real rank's dial arrives; hold it unanswered while dialing back.
    let (mut theirs, _) = l.accept().unwrap();
    theirs.set_read_timeout(Some(T)).unwrap();
    let mut b = [0u8; HELLO_LEN];
    theirs.read_exact(&mut b).unwrap();
    assert_eq!(Hello::decode(&b).unwrap().rank as usize, real);
    let mut ours = TcpStream::connect(table[real].addr).unwrap();
    ours.write_all(&hello(&tok, 2, fake)).unwrap();
    let payload = data_and_goodbye(7, &[4, 5, 6]);
    if real < fake {
        // The real rank is lower: its dial wins, ours is closed unanswered.
        assert!(closed_unanswered(&mut ours), "the higher rank's crossing dial must be closed");
        theirs.write_all(&hello(&tok, 2, fake)).unwrap();
        theirs.write_all(&payload).unwrap();
    } else {
        // We are lower: our dial is answered, and the real rank drops its own.
        let mut b = [0u8; HELLO_LEN];
        ours.set_read_timeout(Some(T)).unwrap();
        ours.read_exact(&mut b).unwrap();
        assert_eq!(Hello::decode(&b).unwrap().rank as usize, real);
        ours.write_all(&payload).unwrap();
        assert!(closed_unanswered(&mut theirs), "the losing dial carries nothing but its hello");
    }
    assert_eq!(h.join().unwrap().unwrap(), vec![4, 5, 6]);
}

#[test]
fn the_lower_ranks_dial_wins_when_the_real_rank_is_lower() {
    crossing_dials(0);
}

#[test]
fn the_lower_ranks_dial_wins_when_the_real_rank_is_higher() {
    crossing_dials(1);
}

#[test]
fn strays_are_refused_while_a_real_peer_connects_late() {
    let token = JobToken::generate();
    let rv = server(2, token);
    let cfg = lazy(0, 2, token, rv);
    let h = thread::spawn(move || {
        let w = Communicator::join(&cfg)?;
        // An any-source receive dials nobody: rank 1 must come to us.
        let (v, st) = w.recv::<u32>(rmpi_transport::Any, rmpi_transport::Any)?;
        w.finalize()?;
        Ok::<_, Error>((v, st.source))
    });
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let table = join_by_hand(rv, token, 2, 1, l.local_addr().unwrap().port());
    let tok = *token.as_bytes();
    let at = table[0].addr;
    // A port scanner, something that is not rmpi, a rank of another job, a wrong world size, a
    // rank out of range, and rank 0 itself: all closed unanswered.
    drop(TcpStream::connect(at).unwrap());
    let strays: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.0\r\n\r\n..............".to_vec(),
        hello(&[0xAB; 16], 2, 1).to_vec(),
        hello(&tok, 3, 1).to_vec(),
        hello(&tok, 2, 7).to_vec(),
        hello(&tok, 2, 0).to_vec(),
    ];
    for bytes in strays {
        let mut s = TcpStream::connect(at).unwrap();
        s.write_all(&bytes).unwrap();
        assert!(closed_unanswered(&mut s), "{bytes:?} must be refused");
    }
    // The real rank 1.
    let mut s = TcpStream::connect(at).unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.write_all(&hello(&tok, 2, 1)).unwrap();
    let mut b = [0u8; HELLO_LEN];
    s.read_exact(&mut b).unwrap();
    assert_eq!(Hello::decode(&b).unwrap().rank, 0);
    s.write_all(&data_and_goodbye(3, &[7, 8])).unwrap();
    assert_eq!(h.join().unwrap().unwrap(), (vec![7, 8], 1));
}

/// The child side of [`running_out_of_descriptors_names_the_limit`]: does nothing in a normal
/// run; with `LAZY_FD_CHILD` set it lowers its descriptor limit, runs two ranks, and exits 0 when
/// rank 0's dial fails naming the limit.
#[test]
fn child_out_of_descriptors() {
    if std::env::var_os("LAZY_FD_CHILD").is_none() {
        return;
    }
    let lim = libc::rlimit { rlim_cur: 256, rlim_max: 256 };
    // SAFETY: setrlimit reads the struct it is given.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let joined = Arc::new(Barrier::new(2));
    let done = Arc::new(Barrier::new(2));
    let (j, d) = (joined.clone(), done.clone());
    let out = std::panic::catch_unwind(move || {
        run(
            2,
            |_| {},
            move |w| {
                j.wait();
                let mut err = None;
                if w.rank() == 0 {
                    // Every descriptor taken: the dial to rank 1 cannot get a socket.
                    let mut hold = Vec::new();
                    while let Ok(f) = std::fs::File::open("/dev/null") {
                        hold.push(f);
                    }
                    err = w.send(&[1u32], 1, 0).err().map(|e| e.to_string());
                    drop(hold);
                }
                d.wait();
                Ok(err)
            },
        )
    });
    let code = match out {
        Ok(v) => match &v[0] {
            Some(e) if e.contains("out of file descriptors") && e.contains("256") => {
                println!("as expected: {e}");
                0
            }
            other => {
                println!("unexpected: {other:?}");
                3
            }
        },
        Err(_) => 4,
    };
    std::process::exit(code);
}

#[test]
fn running_out_of_descriptors_names_the_limit() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_out_of_descriptors", "--nocapture", "--test-threads=1"])
        .env("LAZY_FD_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "child said: {stdout}");
}

#[test]
fn a_dial_that_a_finalizing_rank_never_answered_is_reset_not_closed() {
    // A closed-unanswered dial means "my own dial wins" between crossing dials; a rank that
    // finalizes with our dial accepted but not yet greeted must not say that, or a higher rank
    // would wait for a dial that never comes.
    let token = JobToken::generate();
    let rv = server(2, token);
    let cfg = lazy(0, 2, token, rv);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let h = thread::spawn(move || {
        let w = Communicator::join(&cfg)?;
        // Progress passes (each accepts what is queued) until the fake rank has dialed.
        let _ = rx.recv_timeout(T);
        for _ in 0..50 {
            assert!(w.iprobe(1usize, None::<u64>)?.is_none());
            thread::sleep(Duration::from_millis(2));
        }
        w.finalize()
    });
    let gone = TcpListener::bind("127.0.0.1:0").unwrap();
    let table = join_by_hand(rv, token, 2, 1, gone.local_addr().unwrap().port());
    let mut s = TcpStream::connect(table[0].addr).unwrap();
    tx.send(()).unwrap();
    h.join().unwrap().unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Ok(n) => panic!("the finalized rank closed the dial quietly ({n} bytes)"),
    }
}

/// Reads one frame (header and payload) from a hand-driven peer's socket.
fn read_frame(s: &mut TcpStream) -> (FrameHeader, Vec<u8>) {
    let mut b = [0u8; 32];
    s.read_exact(&mut b).unwrap();
    let h = FrameHeader::decode(&b, u64::MAX).unwrap();
    let len = if matches!(h.kind, FrameKind::Data | FrameKind::Bulk) { h.len as usize } else { 0 };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).unwrap();
    (h, payload)
}

#[test]
fn messages_queued_before_the_answer_follow_the_grant_it_carries() {
    // The real rank queues three messages while its dial is unanswered; the answer grants room
    // for one. The first goes eagerly, the other two are announced, numbered in wire order.
    const LEN: usize = 40 << 10;
    const GRANT: u64 = 50_000;
    let token = JobToken::generate();
    let rv = server(2, token);
    let cfg = lazy(0, 2, token, rv);
    let queued = Arc::new(Barrier::new(2));
    let q = queued.clone();
    let h = thread::spawn(move || {
        let w = Communicator::join(&cfg)?;
        let reqs: Vec<_> =
            (1..=3u8).map(|i| w.isend(&vec![i; LEN], 1, 5)).collect::<Result<_, _>>()?;
        q.wait();
        for r in reqs {
            r.wait()?;
        }
        w.finalize()
    });
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let _table = join_by_hand(rv, token, 2, 1, l.local_addr().unwrap().port());
    let (mut s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    let mut b = [0u8; HELLO_LEN];
    s.read_exact(&mut b).unwrap();
    queued.wait();
    let answer =
        Hello { kind: HelloKind::Peer, token: *token.as_bytes(), size: 2, rank: 1, grant: GRANT };
    s.write_all(&answer.encode()).unwrap();
    let (first, payload) = read_frame(&mut s);
    assert_eq!((first.kind, first.tag, payload), (FrameKind::Data, 5, vec![1u8; LEN]));
    for _ in 0..2 {
        let (rts, _) = read_frame(&mut s);
        assert_eq!((rts.kind, rts.tag, rts.len), (FrameKind::Rts, 5, LEN as u64));
    }
    for n in 1..=2u64 {
        let cts = FrameHeader { kind: FrameKind::Cts, context: 0, tag: n, len: 0 };
        s.write_all(&cts.encode()).unwrap();
        let (bulk, payload) = read_frame(&mut s);
        assert_eq!((bulk.kind, bulk.tag), (FrameKind::Bulk, n));
        assert_eq!(payload, vec![n as u8 + 1; LEN], "rendezvous {n} carries message {}", n + 1);
    }
    h.join().unwrap().unwrap();
    let (bye, _) = read_frame(&mut s);
    assert_eq!(bye.kind, FrameKind::Goodbye);
}
