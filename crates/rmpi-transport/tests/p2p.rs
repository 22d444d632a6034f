//! Point-to-point semantics over the real transports (shared memory, or loopback TCP with
//! `RMPI_SHM=0`), ranks as threads.

use std::time::{Duration, Instant};

use rmpi_transport::local::{self, LocalOptions};
use rmpi_transport::{Any, Communicator, Error};
use serde::{Deserialize, Serialize};

#[test]
fn matching_order_is_preserved_per_sender_and_tag() {
    local::run(2, |w| {
        if w.rank() == 0 {
            for i in 0..1000u32 {
                w.send(&[i], 1, u64::from(i % 3))?;
            }
        } else {
            // Per tag, messages arrive in the order they were sent.
            for tag in [2u64, 0, 1] {
                let mut last = None;
                for _ in 0..(1000 / 3 + u32::from(tag == 0)) {
                    let (v, st) = w.recv::<u32>(0, tag)?;
                    assert_eq!(st.tag, tag);
                    assert_eq!(v[0] % 3, tag as u32);
                    assert!(last.is_none_or(|l| l < v[0]), "out of order: {last:?} then {}", v[0]);
                    last = Some(v[0]);
                }
            }
        }
        Ok(())
    })
    .unwrap();
}

/// Receives waiting for one peer while its messages come in one by one (so each lands in a
/// receive that is already posted): frames of many sizes, so that over 3 MiB they cross the end
/// of the shared-memory ring at every offset, headers included, and arrive intact and in order;
/// a receive posted earlier for any source takes a message first.
#[test]
fn messages_into_waiting_receives_arrive_intact_and_in_posting_order() {
    local::run(2, |w| {
        if w.rank() == 0 {
            for i in 0..3000u32 {
                let len = 1 + (i as usize * 7919) % 2039;
                let body: Vec<u8> = (0..len).map(|k| (k as u32 ^ i) as u8).collect();
                w.send(&body, 1, u64::from(i % 5))?;
                // Wait for the answer, so the next message finds its receive posted.
                w.recv::<u8>(1, 99)?;
            }
            w.send(&[1u8], 1, 7)?;
            w.send(&[2u8], 1, 7)?;
        } else {
            let mut buf = vec![0u8; 4096];
            for i in 0..3000u32 {
                let len = 1 + (i as usize * 7919) % 2039;
                let st = w.recv_into(&mut buf, 0, u64::from(i % 5))?;
                assert_eq!((st.len, st.tag), (len, u64::from(i % 5)));
                assert!(
                    buf[..len].iter().enumerate().all(|(k, b)| *b == (k as u32 ^ i) as u8),
                    "message {i} of {len} bytes corrupted"
                );
                w.send(&[0u8], 0, 99)?;
            }
            // An any-source receive posted first takes the first message of the two, the
            // receive for rank 0 posted after it the second.
            let early = w.irecv::<u8>(Any, Any)?;
            let (late, _) = w.recv::<u8>(0, 7)?;
            let (first, st) = early.wait()?;
            assert_eq!((first, late, st.source), (vec![1u8], vec![2u8], 0));
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn any_source_any_tag_and_status() {
    let n = 5;
    local::run(n, |w| {
        if w.rank() == 0 {
            let mut seen = vec![false; n];
            for _ in 1..n {
                let (v, st) = w.recv::<u64>(Any, Any)?;
                assert_eq!(v, vec![st.source as u64 * 100; st.source]);
                assert_eq!(st.tag, 40 + st.source as u64);
                assert_eq!(st.len, 8 * st.source);
                assert_eq!(st.count::<u64>(), Some(st.source));
                assert!(!seen[st.source]);
                seen[st.source] = true;
            }
            assert!(seen[1..].iter().all(|s| *s));
        } else {
            let r = w.rank();
            w.send(&vec![r as u64 * 100; r], 0, 40 + r as u64)?;
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn zero_length_and_self_messages() {
    local::run(2, |w| {
        let me = w.rank();
        w.send::<f64>(&[], 1 - me, 5)?;
        let (v, st) = w.recv::<f64>(1 - me, 5)?;
        assert!(v.is_empty());
        assert_eq!(st.len, 0);
        // A message to oneself.
        w.send(&[me as i32, 7], me, 9)?;
        let (v, st) = w.recv::<i32>(me, 9)?;
        assert_eq!((v, st.source), (vec![me as i32, 7], me));
        Ok(())
    })
    .unwrap();
}

#[test]
fn large_messages_cross_both_ways_at_once() {
    // 80 MiB each way, both ranks sending before receiving (nonblocking: a blocking send this
    // large waits for its receive): progress while sending must read.
    const N: usize = 10 << 20; // f64 elements
    local::run(2, |w| {
        let me = w.rank();
        let out: Vec<f64> = (0..N).map(|i| (i * (me + 1)) as f64).collect();
        let sent = w.isend(&out, 1 - me, 1)?;
        let (v, st) = w.recv::<f64>(1 - me, 1)?;
        sent.wait()?;
        assert_eq!(st.len, N * 8);
        let other = 2 - me;
        assert!(v.iter().enumerate().all(|(i, x)| *x == (i * other) as f64));
        // Again straight into a caller buffer, posted first.
        let mut inb = vec![0.0f64; N];
        w.sendrecv_into(&out, 1 - me, 2, &mut inb, 1 - me, 2)?;
        assert!(inb.iter().enumerate().all(|(i, x)| *x == (i * other) as f64));
        Ok(())
    })
    .unwrap();
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Config {
    name: String,
    steps: Vec<u32>,
    inner: Option<Box<Config>>,
    weights: std::collections::BTreeMap<String, f64>,
}

#[test]
fn serde_values_round_trip() {
    let cfg = Config {
        name: "run-\u{1f680}".into(),
        steps: vec![1, 2, 3],
        inner: Some(Box::new(Config {
            name: "inner".into(),
            steps: vec![],
            inner: None,
            weights: Default::default(),
        })),
        weights: [("a".to_string(), 0.5), ("b".to_string(), -1.0)].into_iter().collect(),
    };
    let expected = cfg.clone();
    local::run(3, move |w| {
        match w.rank() {
            0 => {
                w.send_obj(&cfg, 1, 3)?;
                w.send_obj("a plain string", 2, 4)?;
            }
            1 => assert_eq!(w.recv_obj::<Config>(0, 3)?.0, expected),
            _ => {
                let (s, st): (String, _) = w.recv_obj(Any, Any)?;
                assert_eq!((s.as_str(), st.source, st.tag), ("a plain string", 0, 4));
            }
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn wrong_type_and_truncation_are_errors() {
    local::run(2, |w| {
        if w.rank() == 0 {
            w.send(&[1u8, 2, 3], 1, 0)?;
            w.send(&[1.0f64; 10], 1, 1)?;
            w.send_obj(&42u8, 1, 2)?;
            w.send(&[5u32], 1, 3)?;
        } else {
            let e = w.recv::<f64>(0, 0).unwrap_err();
            assert!(matches!(e, Error::ElementSize { len: 3, elem_size: 8, .. }), "{e}");
            let mut small = [0.0f64; 4];
            let e = w.recv_into(&mut small, 0, 1).unwrap_err();
            assert!(matches!(e, Error::Truncated { len: 80, capacity: 32, .. }), "{e}");
            let e = w.recv_obj::<String>(0, 2).unwrap_err();
            assert!(matches!(e, Error::Decode { source_rank: 0, .. }), "{e}");
            // The connection is still fine afterwards.
            assert_eq!(w.recv::<u32>(0, 3)?.0, vec![5]);
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn nonblocking_and_probe() {
    local::run(3, |w| {
        let me = w.rank();
        if me == 0 {
            let reqs: Vec<_> = (1..3).map(|r| w.irecv::<u16>(r, 8)).collect::<Result<_, _>>()?;
            let mut got = rmpi_transport::Request::wait_all(reqs)?;
            got.sort_by_key(|(_, st)| st.source);
            assert_eq!(got[0].0, vec![1u16; 1000]);
            assert_eq!(got[1].0, vec![2u16; 1000]);
            // Probe then receive exactly what was probed.
            let st = w.probe(None, Some(9))?;
            let mut buf = vec![0i64; st.count::<i64>().unwrap()];
            let st2 = w.recv_into(&mut buf, st.source, 9)?;
            assert_eq!(st, st2);
            assert_eq!(buf, vec![st.source as i64; 3]);
            let (v, _) = w.recv::<i64>(3 - st.source, 9)?;
            assert_eq!(v, vec![(3 - st.source) as i64; 3]);
            assert!(w.iprobe(None, None)?.is_none());
        } else {
            let data = vec![me as u16; 1000];
            let r = w.isend(&data, 0, 8)?;
            drop(data); // isend does not borrow: the buffer may go at once
            r.wait()?;
            w.send(&[me as i64; 3], 0, 9)?;
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn dropped_requests_lose_no_message() {
    local::run(2, |w| {
        if w.rank() == 1 {
            // A receive posted and dropped before its message arrives...
            let r = w.irecv::<u8>(0, 1)?;
            drop(r);
            w.send(&[0u8], 0, 99)?; // tell rank 0 to go on
                                    // ...does not swallow the message: a later receive gets it.
            let (v, _) = w.recv::<u8>(0, 1)?;
            assert_eq!(v, vec![42]);
            // Same inside a scope whose request is never waited on.
            let mut buf = vec![0u32; 1 << 20];
            w.scope(|s| s.irecv_into(&mut buf, 0, 2).map(drop))?;
            w.send(&[0u8], 0, 99)?;
            let (v, _) = w.recv::<u32>(0, 2)?;
            assert_eq!(v.len(), 1 << 20);
            assert!(v.iter().all(|x| *x == 3));
        } else {
            w.recv::<u8>(1, 99)?;
            w.send(&[42u8], 1, 1)?;
            w.recv::<u8>(1, 99)?;
            w.send(&vec![3u32; 1 << 20], 1, 2)?;
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn dup_and_split_isolate_traffic() {
    local::run(4, |w| {
        let d = w.dup()?;
        let me = w.rank();
        let half = w.split(Some((me / 2) as u32), -(me as i64))?.expect("every rank has a color");
        assert_eq!(half.size(), 2);
        // key = -rank reverses the order within each half.
        assert_eq!(half.rank(), 1 - me % 2);
        let none = w.split(if me == 0 { None } else { Some(1) }, 0)?;
        assert_eq!(none.is_none(), me == 0);
        if me == 0 {
            // Same destination, same tag, three communicators.
            w.send(&[1u8], 1, 5)?;
            d.send(&[2u8], 1, 5)?;
            half.send(&[3u8], 0, 5)?; // rank 1 is rank 0 of the reversed half
        } else if me == 1 {
            // Receive in the opposite order: each comes from its own communicator.
            assert_eq!(half.recv::<u8>(1, 5)?.0, vec![3]);
            assert_eq!(d.recv::<u8>(0, 5)?.0, vec![2]);
            assert_eq!(w.recv::<u8>(0, 5)?.0, vec![1]);
            assert!(w.iprobe(None, None)?.is_none());
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn communicators_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Communicator>();
    // Two threads of one rank talk to two threads of another at once.
    local::run(2, |w| {
        let peer = 1 - w.rank();
        std::thread::scope(|s| {
            let hs: Vec<_> = (0..2u64)
                .map(|t| {
                    let w = w.clone();
                    s.spawn(move || -> Result<(), Error> {
                        for i in 0..200u64 {
                            w.send(&[i * 10 + t], peer, t)?;
                            let (v, _) = w.recv::<u64>(peer, t)?;
                            assert_eq!(v, vec![i * 10 + t]);
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in hs {
                h.join().expect("thread")?;
            }
            Ok(())
        })
    })
    .unwrap();
}

#[test]
fn finalize_delivers_what_was_sent() {
    // Rank 0 sends and finalizes at once; rank 1 reads late.
    local::run(2, |w| {
        if w.rank() == 0 {
            w.send(&vec![9u8; 5 << 20], 1, 0)?;
            for i in 0..100u32 {
                let r = w.isend(&[i], 1, 1)?;
                drop(r);
            }
        } else {
            std::thread::sleep(Duration::from_millis(300));
            assert!(w.recv::<u8>(0, 0)?.0.iter().all(|b| *b == 9));
            for i in 0..100u32 {
                assert_eq!(w.recv::<u32>(0, 1)?.0, vec![i]);
            }
        }
        Ok(())
    })
    .unwrap();
}

/// A rank that finalized closes its streams once its last bytes are out, while its peer, which
/// has not read them yet, may still write to it (a credit frame, a send of its own). That write
/// fails, and the messages in front of the goodbye must still be received, the large ones
/// (which a read leaves in the stream for a receive to come) included.
#[test]
fn messages_of_a_finalized_peer_survive_a_write_that_fails_on_its_end() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let done = AtomicBool::new(false);
    // Two payloads large enough to wait in the stream for their receive, all of them small
    // enough for a loopback socket's buffers (so that, over TCP too, rank 0's finalize ends
    // before rank 1 reads).
    let sizes = [20_000usize, 64, 16_384, 8, 9_000];
    let out = local::run(2, |w| {
        // The connection is up before rank 1 stops making progress.
        if w.rank() == 0 {
            w.recv::<u8>(1, 1)?;
            for (k, &n) in sizes.iter().enumerate() {
                w.send(&pattern(k as u8, n), 1, 5)?;
            }
            w.clone().finalize()?;
            done.store(true, Ordering::SeqCst);
            return Ok(String::new());
        }
        w.send(&[0u8], 0, 1)?;
        let t = Instant::now();
        while !done.load(Ordering::SeqCst) {
            assert!(t.elapsed() < Duration::from_secs(20), "rank 0 never finalized");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Rank 0 reads no more: this send fails (or, over TCP, may be taken by the kernel).
        let sent = match w.send(&[1u8; 64], 0, 9) {
            Ok(()) => "taken".to_string(),
            Err(e) => e.to_string(),
        };
        for (k, &n) in sizes.iter().enumerate() {
            let (v, st) = w.recv::<u8>(0, 5)?;
            assert_eq!((st.source, st.tag, v.len()), (0, 5, n), "message {k}");
            assert!(v == pattern(k as u8, n), "message {k} arrives intact");
        }
        // Then rank 0 is known to have finished.
        let after = w.recv::<u8>(0, 5).expect_err("rank 0 sent nothing more").to_string();
        assert!(after.contains("rank 0") && after.contains("finalized"), "{after}");
        Ok(sent)
    })
    .unwrap();
    assert!(
        out[1] == "taken" || out[1].contains("rank 0") && out[1].contains("finalized"),
        "{}",
        out[1]
    );
}

#[test]
fn sixty_four_ranks_come_up() {
    let t = Instant::now();
    let out = local::run_with(
        64,
        &LocalOptions { spin: Some(Duration::ZERO), ..Default::default() },
        |w| {
            // A ring pass proves every pair we use is connected.
            let (n, me) = (w.size(), w.rank());
            w.send(&[me as u32], (me + 1) % n, 0)?;
            let (v, _) = w.recv::<u32>((me + n - 1) % n, 0)?;
            Ok(v[0])
        },
    )
    .unwrap();
    assert_eq!(out, (0..64u32).map(|r| (r + 63) % 64).collect::<Vec<_>>());
    eprintln!("64 ranks: up, ring and finalize in {:?}", t.elapsed());
}

#[test]
fn singleton_world_talks_to_itself() {
    let w = Communicator::singleton();
    assert_eq!((w.rank(), w.size()), (0, 1));
    w.send(&[1.0f32, 2.0], 0, 3).unwrap();
    assert_eq!(w.recv::<f32>(0, 3).unwrap().0, vec![1.0, 2.0]);
    assert!(matches!(w.send(&[1u8], 1, 0), Err(Error::InvalidRank { rank: 1, size: 1 })));
    w.finalize().unwrap();
}

#[test]
fn a_rank_leaving_early_does_not_hang_the_others() {
    // Rank 0 "fails" and drops its world without finalizing explicitly, while rank 1 waits for a
    // message rank 0 will never send: rank 1 gets an error naming rank 0, and nobody hangs.
    let t = Instant::now();
    let out = local::run(3, |w| {
        match w.rank() {
            0 => {
                w.send(&[1u8; 100], 2, 0)?;
                drop(w);
                Ok(String::new())
            }
            1 => Ok(w.recv::<u8>(0, 0).unwrap_err().to_string()),
            _ => {
                std::thread::sleep(Duration::from_millis(200));
                // What rank 0 sent before leaving is still delivered.
                Ok(format!("{}", w.recv::<u8>(0, 0)?.0.len()))
            }
        }
    })
    .unwrap();
    assert!(out[1].contains("rank 0") && out[1].contains("finalized"), "{}", out[1]);
    assert_eq!(out[2], "100");
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[test]
fn operations_after_finalize_are_errors() {
    let w = Communicator::singleton();
    let w2 = w.clone();
    w.finalize().unwrap();
    assert!(matches!(w2.send(&[1u8], 0, 0), Err(Error::Finalized { rank: 0 })));
    assert!(matches!(w2.recv::<u8>(0, 0), Err(Error::Finalized { rank: 0 })));
}

#[test]
fn polling_without_waiting_sees_new_messages() {
    // iprobe and is_complete in a loop with sleeps (no blocking call in between) must notice
    // what arrives.
    local::run(2, |w| {
        if w.rank() == 0 {
            std::thread::sleep(Duration::from_millis(100));
            w.send(&[1u8], 1, 3)?;
            std::thread::sleep(Duration::from_millis(100));
            w.send(&[2u8], 1, 4)?;
        } else {
            let t = Instant::now();
            let st = loop {
                if let Some(st) = w.iprobe(None, None)? {
                    break st;
                }
                assert!(t.elapsed() < Duration::from_secs(10), "iprobe never saw the message");
                std::thread::sleep(Duration::from_millis(5));
            };
            assert_eq!((st.source, st.tag), (0, 3));
            w.recv::<u8>(0, 3)?;
            let r = w.irecv::<u8>(0, 4)?;
            while !r.is_complete() {
                assert!(t.elapsed() < Duration::from_secs(10), "is_complete never turned true");
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(r.wait()?.0, vec![2]);
        }
        Ok(())
    })
    .unwrap();
}

/// A recognisable byte pattern for message `k` of `len` bytes.
fn pattern(k: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ k).collect()
}

#[test]
fn large_messages_received_after_they_arrive_are_intact() {
    // Large messages announced before their receive is posted wait at their sender; a receive
    // posted later gets every byte, in order, whatever kind of receive it is.
    const LEN: usize = 3 << 20;
    local::run(2, |w| {
        if w.rank() == 0 {
            let mut sends = Vec::new();
            for k in 0..6u8 {
                sends.push(w.isend(&pattern(k, LEN)[..], 1, 5)?);
            }
            w.send(&[7u32], 1, 6)?;
            for s in sends {
                s.wait()?;
            }
        } else {
            // Wait for the small message sent after all the large ones: that receive is
            // behind them on the one connection, so they must not hold the stream up.
            let (v, _) = w.recv::<u32>(0, 6)?;
            assert_eq!(v, vec![7]);
            let mut buf = vec![0u8; LEN];
            w.recv_into(&mut buf, 0, 5)?;
            assert!(buf == pattern(0, LEN), "message 0 damaged");
            let (v, st) = w.recv::<u8>(0, 5)?;
            assert_eq!(st.len, LEN);
            assert!(v == pattern(1, LEN), "message 1 damaged");
            let mut small = vec![0u8; LEN - 1];
            match w.recv_into(&mut small, 0, 5) {
                Err(Error::Truncated { len, capacity, .. }) => {
                    assert_eq!((len, capacity), (LEN, LEN - 1))
                }
                other => panic!("expected a truncation error, got {other:?}"),
            }
            for k in 3..6u8 {
                let mut big = vec![0u8; LEN + 10];
                let st = w.recv_into(&mut big, 0, 5)?;
                assert_eq!(st.len, LEN);
                assert!(big[..LEN] == pattern(k, LEN)[..], "message {k} damaged");
                assert!(big[LEN..].iter().all(|b| *b == 0));
            }
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_receive_posted_mid_message_takes_the_rest_directly() {
    // The receiver polls (iprobe) while a 48 MiB message is arriving, so part of it is read
    // into an engine buffer; the receive posted then must still see every byte in place.
    const LEN: usize = 48 << 20;
    local::run(2, |w| {
        if w.rank() == 0 {
            let data = pattern(9, LEN);
            w.send(&data[..], 1, 1)?;
            w.send(&pattern(3, LEN)[..], 1, 2)?;
        } else {
            // Probing sees the message as soon as its header is in, before its payload.
            let st = loop {
                if let Some(st) = w.iprobe(Some(0), Some(1))? {
                    break st;
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            assert_eq!((st.source, st.tag, st.len), (0, 1, LEN));
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(50) {
                assert_eq!(w.iprobe(None, None)?.map(|s| s.tag), Some(1));
                std::thread::sleep(Duration::from_millis(1));
            }
            let mut buf = vec![0u8; LEN];
            let st = w.recv_into(&mut buf, 0, 1)?;
            assert_eq!((st.source, st.tag, st.len), (0, 1, LEN));
            assert!(buf == pattern(9, LEN), "first message damaged");
            // Any source and any tag claim a waiting message too.
            let st = w.recv_into(&mut buf, Any, Any)?;
            assert_eq!((st.source, st.tag, st.len), (0, 2, LEN));
            assert!(buf == pattern(3, LEN), "second message damaged");
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_probed_message_already_staged_is_received() {
    // A medium message (larger than the direct-read threshold, smaller than the staging buffer)
    // that is entirely read in by a probe, with nothing more to come on the socket: the receive
    // posted after the probe must find its bytes without any new socket event.
    const LEN: usize = 40 << 10;
    local::run(2, |w| {
        if w.rank() == 0 {
            w.send(&pattern(1, LEN)[..], 1, 1)?;
            // Wait for the receiver, so nothing else arrives while it receives.
            w.recv::<u8>(1, 2)?;
        } else {
            std::thread::sleep(Duration::from_millis(50));
            let st = loop {
                if let Some(st) = w.iprobe(Some(0), None)? {
                    break st;
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            assert_eq!((st.tag, st.len), (1, LEN));
            let mut buf = vec![0u8; LEN];
            w.scope(|s| {
                let req = s.irecv_into(&mut buf, 0, 1)?;
                match req.wait_timeout(Duration::from_secs(20))? {
                    Ok(st) => assert_eq!(st.len, LEN),
                    Err(_) => panic!("the staged message was never delivered"),
                }
                Ok::<_, Error>(())
            })?;
            assert!(buf == pattern(1, LEN));
            w.send(&[0u8], 0, 2)?;
        }
        Ok(())
    })
    .unwrap();
}

/// Above the default eager limits (256 KiB over TCP, 1 MiB over shared memory): sent by
/// rendezvous.
const ANNOUNCED: usize = 4 << 20;

#[test]
fn an_announced_message_is_probed_with_its_size_and_matched_by_any_source_and_tag() {
    local::run(3, |w| {
        match w.rank() {
            0 => {
                // Nothing is received before both announcements are in, so both wait here.
                for src in [1, 2] {
                    let st = w.probe(Some(src), None)?;
                    assert_eq!(
                        (st.source, st.tag, st.len),
                        (src, 40 + src as u64, ANNOUNCED + src)
                    );
                }
                let st = w.iprobe(None, Some(42))?.expect("still there");
                assert_eq!((st.source, st.len), (2, ANNOUNCED + 2));
                for _ in 0..2 {
                    let (v, st) = w.recv::<u8>(rmpi_transport::Any, rmpi_transport::Any)?;
                    assert_eq!(v.len(), ANNOUNCED + st.source);
                    assert_eq!(v, pattern(st.source as u8, v.len()));
                }
            }
            r => w.send(&pattern(r as u8, ANNOUNCED + r)[..], 0, 40 + r as u64)?,
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_receive_smaller_than_an_announced_message_is_truncated_and_consumes_it() {
    local::run(2, |w| {
        if w.rank() == 0 {
            w.send(&pattern(1, ANNOUNCED)[..], 1, 3)?;
            w.send(&pattern(2, ANNOUNCED)[..], 1, 3)?;
        } else {
            let mut small = vec![0u8; ANNOUNCED - 1];
            match w.recv_into(&mut small, 0, 3) {
                Err(Error::Truncated { len, capacity, .. }) => {
                    assert_eq!((len, capacity), (ANNOUNCED, ANNOUNCED - 1))
                }
                other => panic!("expected a truncation error, got {other:?}"),
            }
            let (v, _) = w.recv::<u8>(0, 3)?;
            assert!(v == pattern(2, ANNOUNCED), "the truncated message was not consumed");
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn an_isend_above_the_eager_limit_completes_only_once_its_receive_took_it() {
    local::run(2, |w| {
        if w.rank() == 0 {
            let mut out = pattern(5, ANNOUNCED);
            let req = w.isend(&out, 1, 8)?;
            // The buffer is free at once (the request holds a copy) ...
            out.fill(0);
            // ... but the message waits for its receive, which rank 1 posts only after "go".
            assert!(!req.is_complete(), "complete before any receive was posted");
            w.send(&[1u8], 1, 9)?;
            req.wait()?;
        } else {
            w.recv::<u8>(0, 9)?;
            let (v, _) = w.recv::<u8>(0, 8)?;
            assert!(v == pattern(5, ANNOUNCED));
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn an_announced_message_let_go_of_by_its_sender_is_delivered_at_finalize() {
    local::run(2, |w| {
        if w.rank() == 0 {
            // The request goes on in the background; finalizing (the end of this closure)
            // waits for rank 1's receive and sends the payload then, after the goodbye.
            drop(w.isend(&pattern(6, ANNOUNCED)[..], 1, 4)?);
            w.send(&pattern(7, 100)[..], 1, 4)?;
        } else {
            // Rank 0's end: nothing more comes from it after this.
            assert!(matches!(w.recv::<u8>(0, 99), Err(Error::PeerLost { rank: 0, .. })));
            let (a, _) = w.recv::<u8>(0, 4)?;
            let (b, _) = w.recv::<u8>(0, 4)?;
            assert!(a == pattern(6, ANNOUNCED) && b == pattern(7, 100), "order or bytes wrong");
        }
        Ok(())
    })
    .unwrap();
}
