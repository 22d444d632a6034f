//! The PMI codecs against transcripts of the real servers (Slurm 22.05's pmi2 plugin, MPICH
//! Hydra 4.0), random and truncated input, and whole jobs joined through a small in-test PMI
//! server over socketpairs (the real servers are exercised by rmpirun's Slurm and Hydra tests).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};
use rmpi_transport::pmi::{self, conn::Conn, mapping, pmi1, pmi2};
use rmpi_transport::wire::{Endpoint, HostId, ShmOffer};
use rmpi_transport::{launch, Any, Communicator};

#[test]
fn pmi2_slurm_transcript() {
    // Requests exactly as Slurm's stepd receives them (length left-justified).
    let fi =
        pmi2::encode("fullinit", &[("pmijobid", "3.0"), ("pmirank", "0"), ("threaded", "FALSE")])
            .unwrap();
    assert_eq!(fi, b"51    cmd=fullinit;pmijobid=3.0;pmirank=0;threaded=FALSE;");
    assert_eq!(pmi2::encode("kvs-fence", &[]).unwrap(), b"14    cmd=kvs-fence;");
    // Replies, rc first (Slurm).
    let r = pmi2::decode(b"cmd=fullinit-response;rc=0;pmi-version=2;pmi-subversion=0;rank=0;size=8;appnum=-1;debugged=FALSE;pmiverbose=FALSE;").unwrap();
    assert_eq!((r.cmd.as_str(), r.rc(), r.get("size")), ("fullinit-response", 0, Some("8")));
    let r = pmi2::decode(b"cmd=info-getjobattr-response;rc=0;found=TRUE;value=(vector,(0,4,2));")
        .unwrap();
    assert_eq!(r.get("value"), Some("(vector,(0,4,2))"));
    let r = pmi2::decode(b"cmd=kvs-get-response;rc=0;found=FALSE;").unwrap();
    assert_eq!(r.get("found"), Some("FALSE"));
    assert_eq!(pmi2::decode_len(b"114   ").unwrap(), 114);
    assert_eq!(pmi2::decode_len(b"  28  ").unwrap(), 28);
    // rc last (Hydra).
    let r = pmi2::decode(b"cmd=kvs-put-response;rc=0;").unwrap();
    assert_eq!(r.rc(), 0);
    let r = pmi2::decode(b"cmd=fullinit-response;rank=1;size=4;appnum=0;rc=3;").unwrap();
    assert_eq!(r.rc(), 3);
    // Values we would have to double or that Slurm cannot carry are refused on the way out.
    assert!(pmi2::encode("kvs-put", &[("key", "a"), ("value", "x;y")]).is_err());
    assert!(pmi2::encode("kvs-put", &[("key", "a=b"), ("value", "x")]).is_err());
}

#[test]
fn pmi1_slurm_and_hydra_transcripts() {
    assert_eq!(
        pmi1::encode("put", &[("kvsname", "4.0"), ("key", "rmpi-ep-5"), ("value", "0a0b")])
            .unwrap(),
        "cmd=put kvsname=4.0 key=rmpi-ep-5 value=0a0b\n"
    );
    // Slurm puts rc first; Hydra last or not at all, with msg=.
    let r = pmi1::decode(b"cmd=response_to_init rc=0 pmi_version=1 pmi_subversion=1").unwrap();
    assert_eq!((r.cmd.as_str(), r.rc()), ("response_to_init", 0));
    let r = pmi1::decode(b"cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0").unwrap();
    assert_eq!(r.rc(), 0);
    let r = pmi1::decode(b"cmd=my_kvsname kvsname=kvs_1433_0_1774952306_vm").unwrap();
    assert_eq!((r.rc(), r.get("kvsname")), (0, Some("kvs_1433_0_1774952306_vm")));
    let r =
        pmi1::decode(b"cmd=get_result rc=-1 msg=key_rmpi-ep-9_not_found value=unknown").unwrap();
    assert_eq!(r.rc(), -1);
    let r = pmi1::decode(b"cmd=get_result rc=1").unwrap();
    assert_eq!(r.rc(), 1);
    let r = pmi1::decode(b"cmd=barrier_out").unwrap();
    assert_eq!((r.cmd.as_str(), r.rc()), ("barrier_out", 0));
    // A put line of 1024 bytes or more is lost by Slurm: refused before sending.
    let long = "a".repeat(1000);
    assert!(pmi1::encode("put", &[("kvsname", "4.0"), ("key", "k"), ("value", &long)]).is_err());
    assert!(pmi1::decode(b"put_result rc=0").is_err());
    assert!(pmi1::decode(b"cmd=x novalue").is_err());
}

#[test]
fn endpoint_values_round_trip_and_fit() {
    // The largest endpoint there is: a 255-byte host name and a shared-memory offer.
    let offer = ShmOffer {
        host: HostId { boot_id: [7; 16], net_ns: u64::MAX, pid_ns: 1, uid: 0 },
        pid: u32::MAX,
        segment_fd: 3,
        grant: u32::MAX,
    };
    let ep = Endpoint {
        addr: "10.214.1.2:40000".parse().unwrap(),
        host: "h".repeat(255),
        shm: Some(offer),
    };
    let v = pmi::encode_endpoint(&ep);
    assert!(v.len() <= pmi::MAX_VALUE, "{}", v.len());
    assert!(v.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(pmi::decode_endpoint(&v).unwrap(), ep);
    assert!(pmi::decode_endpoint(&v[..v.len() - 2]).is_err());
    assert!(pmi::decode_endpoint("zz").is_err());
    assert!(pmi::decode_endpoint(&format!("{v}00")).is_err());
}

#[test]
fn random_and_truncated_input_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let samples: [&[u8]; 4] = [
        b"cmd=kvs-get-response;rc=0;found=TRUE;value=0a0b;",
        b"cmd=get_result rc=0 msg=success value=10.0.0.1:5",
        b"(vector,(0,4,2),(4,1,3))",
        b"04c0a80102409c0268",
    ];
    for _ in 0..20_000 {
        let mut b: Vec<u8> = samples[rng.random_range(0..samples.len())].to_vec();
        match rng.random_range(0..3) {
            0 => b.truncate(rng.random_range(0..=b.len())),
            1 => {
                let i = rng.random_range(0..b.len());
                b[i] = rng.random();
            }
            _ => {
                b = vec![0; rng.random_range(0..64)];
                rng.fill_bytes(&mut b);
            }
        }
        let _ = pmi2::decode(&b);
        let _ = pmi1::decode(&b);
        let _ = pmi2::decode_len(&b[..b.len().min(6)]);
        let text = String::from_utf8_lossy(&b);
        let _ = mapping::nodes(&text, rng.random_range(0..64));
        let _ = pmi::decode_endpoint(&text);
    }
    assert!(mapping::nodes("(vector,(0,4000000000,1))", 3).is_some());
    assert!(mapping::nodes("(vector,(0,0,0))", 3).is_none());
}

/// A client that talks to `reply` (a server that answers the init line, then sends `then`).
fn client_against(then: Vec<u8>, version: u32) -> Result<(), String> {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let server = std::thread::spawn(move || {
        let mut s = theirs;
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"cmd=response_to_init rc=0 pmi_version=2 pmi_subversion=0\n");
        let _ = s.read(&mut buf);
        let _ = s.write_all(&then);
        // Hold the connection open until the client gives up on its own deadline.
        while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
    });
    let deadline = Instant::now() + Duration::from_millis(300);
    let conn = Conn::from_unix(ours);
    let r = if version == 2 {
        pmi2::Client::init(conn, Some("0"), Some("1.0"), deadline).map(drop)
    } else {
        pmi1::Client::init(conn, None, Some((0, 2)), deadline).map(drop)
    };
    let _ = server.join();
    r.map_err(|e| e.to_string())
}

#[test]
fn nonsense_and_silence_from_the_server_are_errors_not_hangs() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let good = b"114   cmd=fullinit-response;rc=0;pmi-version=2;pmi-subversion=0;rank=0;size=8;appnum=-1;debugged=FALSE;pmiverbose=FALSE;".to_vec();
    for i in 0..40 {
        let t0 = Instant::now();
        let mut reply = good.clone();
        match i % 4 {
            0 => reply.truncate(rng.random_range(0..reply.len())),
            1 => reply = b"999999garbage".to_vec(),
            2 => {
                let j = rng.random_range(0..reply.len());
                reply[j] = b';';
            }
            _ => {
                reply = vec![0; 40];
                rng.fill_bytes(&mut reply);
            }
        }
        let e = client_against(reply.clone(), 2);
        // A corrupted reply may still parse as a valid fullinit-response: then job-getid waits.
        let e = e.expect_err("a broken or silent server cannot give a session");
        assert!(!e.is_empty());
        assert!(t0.elapsed() < Duration::from_secs(3), "took {:?}: {e}", t0.elapsed());
    }
    let e = client_against(b"cmd=my_kvsname rc=0 kvsname=".to_vec(), 1).unwrap_err();
    assert!(e.contains("boot deadline") || e.contains("kvsname"), "{e}");
    let e = client_against(b"cmd=maxes rc=0\n".to_vec(), 1).unwrap_err();
    assert!(e.contains("expected my_kvsname, got maxes"), "{e}");
}

/// A small PMI server for `n` ranks over socketpairs: the subset of both protocols rmpi uses.
/// It counts every rank's key-value gets, serves `mapping` as `PMI_process_mapping` when set,
/// and answers gets of each `corrupt` key from ranks not spared with a value that is no endpoint.
struct TestServer {
    store: Mutex<HashMap<String, String>>,
    barrier: Barrier,
    n: usize,
    mapping: Option<String>,
    gets: Vec<AtomicUsize>,
    corrupt: Vec<(String, Vec<usize>)>,
}

impl TestServer {
    fn new(n: usize) -> TestServer {
        TestServer {
            store: Mutex::new(HashMap::new()),
            barrier: Barrier::new(n),
            n,
            mapping: None,
            gets: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            corrupt: Vec::new(),
        }
    }

    /// The value of `key` as rank `from` gets it.
    fn get(&self, key: &str, from: usize) -> Option<String> {
        self.gets[from].fetch_add(1, Ordering::SeqCst);
        if key == "PMI_process_mapping" {
            return self.mapping.clone();
        }
        for (k, spared) in &self.corrupt {
            if k == key && !spared.contains(&from) {
                return Some("not-an-endpoint".into());
            }
        }
        self.store.lock().unwrap().get(key).cloned()
    }
}

fn serve(srv: Arc<TestServer>, mut s: UnixStream, rank: usize) {
    let mut pending = Vec::new();
    let line = |s: &mut UnixStream, pending: &mut Vec<u8>| -> Option<String> {
        loop {
            if let Some(i) = pending.iter().position(|b| *b == b'\n') {
                let l: Vec<u8> = pending.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&l[..i]).to_string());
            }
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).ok().filter(|n| *n > 0)?;
            pending.extend_from_slice(&buf[..n]);
        }
    };
    let init = line(&mut s, &mut pending).unwrap_or_default();
    if init.contains("pmi_version=2") {
        s.write_all(b"cmd=response_to_init rc=0 pmi_version=2 pmi_subversion=0\n").unwrap();
        loop {
            while pending.len() < 6 {
                let mut buf = [0u8; 1024];
                match s.read(&mut buf) {
                    Ok(n) if n > 0 => pending.extend_from_slice(&buf[..n]),
                    _ => return,
                }
            }
            let len = pmi2::decode_len(&pending[..6]).unwrap();
            while pending.len() < 6 + len {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).unwrap();
                pending.extend_from_slice(&buf[..n]);
            }
            let body: Vec<u8> = pending.drain(..6 + len).skip(6).collect();
            let m = pmi2::decode(&body).unwrap();
            let size = srv.n.to_string();
            let r = rank.to_string();
            let mut fields: Vec<(&str, String)> = vec![("rc", "0".into())];
            match m.cmd.as_str() {
                "fullinit" => {
                    fields.push(("rank", r));
                    fields.push(("size", size));
                }
                "job-getid" => fields.push(("jobid", "7.0".into())),
                "kvs-put" => {
                    let (k, v) = (m.get("key").unwrap(), m.get("value").unwrap());
                    srv.store.lock().unwrap().insert(k.into(), v.into());
                }
                "kvs-fence" => {
                    srv.barrier.wait();
                }
                "kvs-get" => match srv.get(m.get("key").unwrap(), rank) {
                    Some(v) => {
                        fields.push(("found", "TRUE".into()));
                        fields.push(("value", v));
                    }
                    None => fields.push(("found", "FALSE".into())),
                },
                "info-getjobattr" => match (&srv.mapping, m.get("key")) {
                    (Some(v), Some("PMI_process_mapping")) => {
                        fields.push(("found", "TRUE".into()));
                        fields.push(("value", v.clone()));
                    }
                    _ => fields.push(("found", "FALSE".into())),
                },
                _ => {}
            }
            let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.write_all(&pmi2::encode(&format!("{}-response", m.cmd), &f).unwrap()).unwrap();
            if m.cmd == "finalize" {
                return;
            }
        }
    }
    s.write_all(b"cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0\n").unwrap();
    while let Some(l) = line(&mut s, &mut pending) {
        let m = pmi1::decode(l.as_bytes()).unwrap();
        let reply = match m.cmd.as_str() {
            "get_my_kvsname" => "cmd=my_kvsname kvsname=kvs_1_0".to_string(),
            "put" => {
                let (k, v) = (m.get("key").unwrap(), m.get("value").unwrap());
                srv.store.lock().unwrap().insert(k.into(), v.into());
                "cmd=put_result rc=0 msg=success".into()
            }
            "barrier_in" => {
                srv.barrier.wait();
                "cmd=barrier_out".into()
            }
            "get" => match srv.get(m.get("key").unwrap(), rank) {
                Some(v) => format!("cmd=get_result rc=0 msg=success value={v}"),
                None => "cmd=get_result rc=-1 msg=not_found value=unknown".into(),
            },
            "finalize" => "cmd=finalize_ack".into(),
            other => panic!("unexpected {other}"),
        };
        s.write_all(format!("{reply}\n").as_bytes()).unwrap();
        if m.cmd == "finalize" {
            return;
        }
    }
}

/// Runs `started` of `n` ranks as threads, each joining through `PMI_FD` with `vars`.
fn job(n: usize, started: usize, vars: &[(&str, &str)]) -> Vec<rmpi_transport::Result<usize>> {
    let srv = Arc::new(TestServer::new(n));
    let handles: Vec<_> = (0..started)
        .map(|rank| {
            let (ours, theirs) = UnixStream::pair().unwrap();
            let srv = srv.clone();
            std::thread::spawn(move || serve(srv, theirs, rank));
            let fd = ours.into_raw_fd().to_string();
            let mut env: HashMap<String, String> =
                vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            env.insert("PMI_FD".into(), fd);
            env.insert("PMI_RANK".into(), rank.to_string());
            env.insert("PMI_SIZE".into(), n.to_string());
            env.insert("MPI_LOCALRANKID".into(), rank.to_string());
            env.insert("MPI_LOCALNRANKS".into(), n.to_string());
            std::thread::spawn(move || {
                let cfg = launch::from_lookup(&|k| env.get(k).cloned())?.expect("a PMI config");
                assert_eq!(
                    (cfg.rank, cfg.size, cfg.local_rank, cfg.ranks_on_host),
                    (rank, n, rank, n)
                );
                let world = Communicator::join(&cfg)?;
                let mut got = 0;
                for peer in 0..n {
                    if peer != world.rank() {
                        world.send(&[world.rank() as u64], peer, 1)?;
                    }
                }
                for _ in 1..n {
                    let (v, _) = world.recv::<u64>(Any, Any)?;
                    got += v[0] as usize;
                }
                world.finalize()?;
                Ok(got)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn whole_job_through_pmi2_and_pmi1() {
    for version in ["2", "1"] {
        let out = job(4, 4, &[("RMPI_PMI", version), ("RMPI_BOOT_TIMEOUT", "20")]);
        for (rank, r) in out.into_iter().enumerate() {
            assert_eq!(r.unwrap(), 6 - rank, "PMI-{version} rank {rank}");
        }
    }
}

#[test]
fn a_rank_that_never_arrives_fails_the_fence_at_the_deadline() {
    let t0 = Instant::now();
    let out = job(3, 2, &[("RMPI_PMI", "2"), ("RMPI_BOOT_TIMEOUT", "1")]);
    for r in out {
        let e = r.unwrap_err().to_string();
        assert!(e.contains("fence") && e.contains("3 ranks"), "{e}");
    }
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
}

/// How the ranks of a simulated multi-node job are told where they run.
#[derive(Clone, Copy, PartialEq)]
enum Told {
    /// Slurm: `SLURM_GTIDS`, `SLURM_LOCALID`, `SLURM_STEP_NODELIST`, `SLURMD_NODENAME`.
    Slurm,
    /// Hydra: `MPI_LOCALRANKID` and `MPI_LOCALNRANKS` only (node names come from the store).
    Hydra,
}

/// `n` ranks in blocks of `per_node` on simulated nodes `n1`, `n2`, ..., joined through the
/// test server `srv` (which serves the mapping), each sending its rank to the next rank and
/// receiving from the previous one (a ring: each rank talks to two peers). Returns each rank's
/// result: the rank it received, and its host label for that peer.
fn ring_job(
    srv: Arc<TestServer>,
    per_node: usize,
    told: Told,
    vars: &[(&str, &str)],
) -> Vec<rmpi_transport::Result<(usize, String)>> {
    let n = srv.n;
    let nodes = n.div_ceil(per_node);
    let handles: Vec<_> = (0..n)
        .map(|rank| {
            let (ours, theirs) = UnixStream::pair().unwrap();
            let s = srv.clone();
            std::thread::spawn(move || serve(s, theirs, rank));
            let mut env: HashMap<String, String> =
                vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            env.insert("PMI_FD".into(), ours.into_raw_fd().to_string());
            env.insert("PMI_RANK".into(), rank.to_string());
            env.insert("PMI_SIZE".into(), n.to_string());
            let node = rank / per_node;
            let here: Vec<String> =
                (node * per_node..((node + 1) * per_node).min(n)).map(|r| r.to_string()).collect();
            match told {
                Told::Slurm => {
                    env.insert("SLURM_GTIDS".into(), here.join(","));
                    env.insert("SLURM_LOCALID".into(), (rank % per_node).to_string());
                    env.insert("SLURM_STEP_NODELIST".into(), format!("n[1-{nodes}]"));
                    env.insert("SLURMD_NODENAME".into(), format!("n{}", node + 1));
                }
                Told::Hydra => {
                    env.insert("MPI_LOCALRANKID".into(), (rank % per_node).to_string());
                    env.insert("MPI_LOCALNRANKS".into(), here.len().to_string());
                }
            }
            std::thread::spawn(move || {
                let cfg = launch::from_lookup(&|k| env.get(k).cloned())?.expect("a PMI config");
                let world = Communicator::join(&cfg)?;
                let (next, prev) = ((rank + 1) % n, (rank + n - 1) % n);
                world.send(&[rank as u64], next, 1)?;
                let (v, _) = world.recv::<u64>(prev, 1)?;
                let label = world.host_of(prev)?;
                world.finalize()?;
                Ok((v[0] as usize, label))
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn gets(srv: &TestServer) -> Vec<usize> {
    srv.gets.iter().map(|g| g.load(Ordering::SeqCst)).collect()
}

#[test]
fn a_rank_reads_its_nodes_endpoints_and_its_peers_not_the_whole_table() {
    // 24 ranks, 6 nodes of 4, told as Slurm tells them.
    let (n, per_node) = (24, 4);
    for (version, mapping_get) in [("2", 0), ("1", 1)] {
        let mut s = TestServer::new(n);
        s.mapping = Some("(vector,(0,6,4))".into());
        let srv = Arc::new(s);
        let vars = [("RMPI_PMI", version), ("RMPI_BOOT_TIMEOUT", "30")];
        let out = ring_job(srv.clone(), per_node, Told::Slurm, &vars);
        for (rank, r) in out.into_iter().enumerate() {
            let prev = (rank + n - 1) % n;
            let (v, label) = r.unwrap_or_else(|e| panic!("PMI-{version} rank {rank}: {e}"));
            assert_eq!(v, prev);
            assert_eq!(label, format!("n{}", prev / per_node + 1), "rank {rank}");
        }
        let counts = gets(&srv);
        eprintln!("PMI-{version}: key-value gets per rank, connections on demand: {counts:?}");
        for (rank, g) in counts.iter().enumerate() {
            // The mapping (PMI-1), the token, the node's 3 other ranks, at most the 2 peers.
            let at_start = mapping_get + 1 + (per_node - 1);
            assert!((at_start..=at_start + 2).contains(g), "PMI-{version} rank {rank}: {g} gets");
        }
        // The ranks at a node's edge talk to another node: one of them at least read a peer.
        assert!(counts.iter().any(|g| *g > mapping_get + per_node), "{counts:?}");
    }
    // The same job reading the whole table: every rank reads every other rank's key.
    let mut s = TestServer::new(n);
    s.mapping = Some("(vector,(0,6,4))".into());
    let srv = Arc::new(s);
    let vars = [("RMPI_PMI", "2"), ("RMPI_BOOTSTRAP", "table"), ("RMPI_BOOT_TIMEOUT", "30")];
    for r in ring_job(srv.clone(), per_node, Told::Slurm, &vars) {
        r.unwrap();
    }
    let counts = gets(&srv);
    eprintln!("PMI-2: key-value gets per rank, whole table: {counts:?}");
    assert!(counts.iter().all(|g| *g == n), "{counts:?}");
}

#[test]
fn without_node_names_each_node_names_itself_in_the_store() {
    // Hydra's variables: no node list, so the first rank of each node puts its name.
    let (n, per_node) = (12, 3);
    let mut s = TestServer::new(n);
    s.mapping = Some("(vector,(0,4,3))".into());
    let srv = Arc::new(s);
    let vars = [("RMPI_PMI", "1"), ("RMPI_BOOT_TIMEOUT", "30")];
    let out = ring_job(srv.clone(), per_node, Told::Hydra, &vars);
    let me = out[0].as_ref().map(|(_, l)| l.clone()).unwrap();
    for (rank, r) in out.into_iter().enumerate() {
        let (v, label) = r.unwrap_or_else(|e| panic!("rank {rank}: {e}"));
        assert_eq!((v, label.as_str()), ((rank + n - 1) % n, me.as_str()));
    }
    let keys: Vec<String> = srv.store.lock().unwrap().keys().cloned().collect();
    for node in 0..4 {
        assert!(keys.contains(&format!("rmpi-nd-{node}")), "{keys:?}");
    }
    let counts = gets(&srv);
    eprintln!("PMI-1, names from the store: key-value gets per rank: {counts:?}");
    for (rank, g) in counts.iter().enumerate() {
        // The mapping, the token, 2 local ranks, the 3 other nodes' names, at most 2 peers.
        let at_start = 1 + 1 + (per_node - 1) + 3;
        assert!((at_start..=at_start + 2).contains(g), "rank {rank}: {g} gets");
    }
}

#[test]
fn a_nonsense_endpoint_at_first_dial_names_the_rank_and_the_key() {
    // 8 ranks on 2 nodes; rank 4's endpoint reads as garbage from node 0 (ranks 0-3) and rank
    // 3's from node 1, so neither of the two can reach the other, whichever dials first.
    let mut s = TestServer::new(8);
    s.mapping = Some("(vector,(0,2,4))".into());
    s.corrupt =
        vec![("rmpi-ep-4".into(), vec![4, 5, 6, 7]), ("rmpi-ep-3".into(), vec![0, 1, 2, 3])];
    let srv = Arc::new(s);
    let vars = [("RMPI_PMI", "2"), ("RMPI_BOOT_TIMEOUT", "20")];
    let out = ring_job(srv, 4, Told::Slurm, &vars);
    // Rank 3 sends to rank 4, rank 4 receives from rank 3: each dial reads the other's key.
    let e = out[3].as_ref().map(drop).unwrap_err().to_string();
    assert!(e.contains("rank 4") && e.contains("rmpi-ep-4"), "{e}");
    let e = out[4].as_ref().map(drop).unwrap_err().to_string();
    assert!(e.contains("rank 3") && e.contains("rmpi-ep-3"), "{e}");
    eprintln!("{e}");
    // The ranks of node 1 read rank 4's real endpoint at start and are not misled.
    for r in [5, 6] {
        assert!(out[r].is_ok(), "rank {r}: {:?}", out[r].as_ref().err());
    }
}
