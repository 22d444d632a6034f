//! The receive grid as a user meets it: one "any" convention, every receive returning its value
//! and a Status, the nonblocking object cells, the clock, and type-checked object messages.

use rmpi::prelude::*;
use rmpi::{Error, Source, TagMatch};

#[test]
fn every_receive_takes_a_rank_or_any_and_returns_a_status() {
    let out = rmpi::local::run(2, |w| {
        if w.rank() == 0 {
            for tag in 10..17u64 {
                w.send(&[tag as u32], 1, tag)?;
            }
            w.send_obj(&"obj-a".to_string(), 1, 20)?;
            w.send_obj(&"obj-b".to_string(), 1, 21)?;
            w.isend_obj(&vec![1u64, 2, 3], 1, 22)?.wait()?;
            return Ok(Vec::new());
        }
        let mut seen = Vec::new();
        let (v, st) = w.recv::<u32>(Any, Any)?;
        seen.push((v[0] as u64, st.source, st.tag));
        let (v, st) = w.recv::<u32>(0, Any)?;
        seen.push((v[0] as u64, st.source, st.tag));
        let (v, st) = w.recv::<u32>(Any, 12)?;
        seen.push((v[0] as u64, st.source, st.tag));
        let mut one = [0u32];
        let st = w.recv_into(&mut one, Source::Any, TagMatch::Tag(13))?;
        seen.push((one[0] as u64, st.source, st.tag));
        let st = w.probe(Any, 14)?;
        assert_eq!((st.source, st.tag, st.len), (0, 14, 4));
        let (v, st) = w.irecv::<u32>(Any, Any)?.wait()?;
        seen.push((v[0] as u64, st.source, st.tag));
        let st = w.scope(|s| s.irecv_into(&mut one, Any, 15)?.wait())?;
        seen.push((one[0] as u64, st.source, st.tag));
        // An Option still converts, for code written before Any.
        let (v, st) = w.recv::<u32>(Some(0), None)?;
        seen.push((v[0] as u64, st.source, st.tag));
        let (s, st) = w.recv_obj::<String>(Any, Any)?;
        assert_eq!((s.as_str(), st.source, st.tag), ("obj-a", 0, 20));
        let (s, st) = w.irecv_obj::<String>(0, 21)?.wait()?;
        assert_eq!((s.as_str(), st.tag), ("obj-b", 21));
        let st = loop {
            if let Some(st) = w.iprobe(Any, Any)? {
                break st;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        assert_eq!(st.tag, 22);
        let (v, _) = w.recv_obj::<Vec<u64>>(0, 22)?;
        assert_eq!(v, [1, 2, 3]);
        Ok(seen)
    })
    .unwrap();
    let want: Vec<(u64, usize, u64)> = (10..17).map(|t| (t, 0, t)).collect();
    assert_eq!(out[1], want);
}

#[test]
fn an_object_received_as_another_type_is_a_decode_error_naming_both() {
    rmpi::local::run(2, |w| {
        if w.rank() == 0 {
            w.send_obj(&"hello".to_string(), 1, 0)?;
            w.send_obj(&(3u64, 'x', 'y', 'z'), 1, 1)?;
            w.send_obj("after", 1, 2)?;
            return Ok(());
        }
        let e = w.recv_obj::<Vec<u64>>(0, 0).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, Error::Decode { source_rank: 0, .. }), "{e}");
        assert!(text.contains("String") && text.contains("Vec<u64>"), "{text}");
        let e = w.recv_obj::<(u64, u64, u64, u64)>(0, 1).unwrap_err();
        assert!(matches!(e, Error::Decode { source_rank: 0, .. }), "{e}");
        // A str sent is a String received; the mismatches consumed their messages.
        let (s, st) = w.recv_obj::<String>(0, Any)?;
        assert_eq!((s.as_str(), st.tag), ("after", 2));
        Ok(())
    })
    .unwrap();
}

#[test]
fn a_collective_object_of_another_type_is_a_decode_error() {
    let out = rmpi::local::run(3, |w| {
        if w.rank() == 0 {
            w.bcast_obj(Some("text".to_string()), 0).map(|_| ())
        } else {
            match w.bcast_obj::<Vec<u64>>(None, 0) {
                Err(Error::Decode { source_rank, msg }) => {
                    assert!(msg.contains("String") && msg.contains("Vec<u64>"), "{msg}");
                    assert!(source_rank < 3);
                    Ok(())
                }
                other => panic!("rank {}: {other:?}", w.rank()),
            }
        }
    });
    assert!(out.is_ok(), "{out:?}");
}

#[test]
fn wtime_is_monotonic_seconds() {
    let t0 = rmpi::wtime();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let dt = rmpi::wtime() - t0;
    assert!((0.02..10.0).contains(&dt), "{dt}");
    assert!(rmpi::wtick() > 0.0 && rmpi::wtick() < 1e-3);
}

#[test]
fn every_u64_is_a_user_tag() {
    let out = rmpi::local::run(2, |w| {
        let tags = [0, 1 << 31, u64::MAX - 1, u64::MAX];
        if w.rank() == 0 {
            for t in tags {
                w.send(&[t], 1, t)?;
            }
            return Ok(true);
        }
        for t in tags {
            let (v, st) = w.recv::<u64>(0, t)?;
            assert_eq!((v[0], st.tag), (t, t));
        }
        Ok(true)
    });
    assert_eq!(out.unwrap(), vec![true, true]);
}
