//! A simulated directory bootstrap: the real launcher collector and real gatherers over real
//! loopback sockets, and clients that register and look up like ranks but open no peer socket.
//!
//! `simulated_agent_small` (in the suite) runs every part in this process and checks every
//! rank's go and one look-up. `simulated_agent` (ignored; `SIM_RANKS`, `SIM_PER_HOST`) runs the
//! launcher here, the agents and the ranks in child processes (this test binary again, role
//! `sim_role`: one process would run out of descriptors), and prints the time to "go", the
//! launcher's bytes in and out and its peak memory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::client;
use super::gatherer::{self, GathererConfig};
use super::launcher::Collector;
use super::wire::{frame_len, Msg, MAX_FRAME};
use crate::deadline::read_exact_by;
use crate::token::JobToken;
use crate::wire::Endpoint;

/// The endpoint rank `r` (on host `h`) advertises.
fn endpoint(r: usize, h: u16) -> Endpoint {
    Endpoint {
        addr: SocketAddr::from(([127, 0, 0, 1], 1024 + (r % 60_000) as u16)),
        host: format!("sim-host-{h}"),
        shm: None,
    }
}

fn read_frame(s: &TcpStream, by: Instant) -> Result<Vec<u8>, String> {
    let mut l = [0u8; 4];
    read_exact_by(s, &mut l, by).map_err(|e| format!("frame length: {e}"))?;
    frame_len(&l, MAX_FRAME).map_err(|e| e.to_string())?;
    let n = u32::from_le_bytes(l) as usize;
    let mut f = vec![0u8; 4 + n];
    f[..4].copy_from_slice(&l);
    read_exact_by(s, &mut f[4..], by).map_err(|e| format!("frame body: {e}"))?;
    Ok(f)
}

/// What the launcher saw.
#[derive(Debug)]
struct LauncherStats {
    bytes_in: usize,
    bytes_out: usize,
    go_sent: Instant,
}

/// The launcher: one connection per host (which first says its index), one report in from each,
/// the placement out to each.
fn launcher(
    listener: TcpListener,
    host_of: Vec<u16>,
    hosts: usize,
    by: Instant,
) -> Result<LauncherStats, String> {
    let mut conns: Vec<Option<TcpStream>> = (0..hosts).map(|_| None).collect();
    let mut bytes_in = 0;
    for _ in 0..hosts {
        let (s, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        let mut i = [0u8; 2];
        read_exact_by(&s, &mut i, by).map_err(|e| format!("host index: {e}"))?;
        bytes_in += 2;
        let h = u16::from_le_bytes(i) as usize;
        if h >= hosts || conns[h].is_some() {
            return Err(format!("bad host index {h}"));
        }
        conns[h] = Some(s);
    }
    let names = (0..hosts).map(|h| format!("sim-host-{h}")).collect();
    let mut collector = Collector::new(host_of, names)?;
    let mut placement = None;
    for (h, s) in conns.iter().enumerate() {
        let s = s.as_ref().ok_or("a host never connected")?;
        let f = read_frame(s, by)?;
        bytes_in += f.len();
        if let Some(p) = collector.on_frame(h, &f)? {
            placement = Some(p);
        }
    }
    let placement = placement.ok_or("not every host reported")?;
    let mut bytes_out = 0;
    for s in conns.iter_mut().flatten() {
        s.write_all(&placement).map_err(|e| format!("sending the placement: {e}"))?;
        bytes_out += placement.len();
    }
    Ok(LauncherStats { bytes_in, bytes_out, go_sent: Instant::now() })
}

/// The thread that relays the launcher's frames to a process's gatherers; it returns them.
type Relay = thread::JoinHandle<Result<Vec<(TcpStream, gatherer::Gatherer)>, String>>;

/// Starts the gatherers of hosts `range`, each linked to the launcher at `at`; returns their
/// addresses (by host) and the thread that relays the launcher's frames to them.
fn agents(
    at: SocketAddr,
    host_of: &[u16],
    range: std::ops::Range<usize>,
    token: JobToken,
    by: Instant,
) -> Result<(Vec<SocketAddr>, Relay), String> {
    let size = host_of.len();
    let mut addrs = Vec::new();
    let mut links = Vec::new();
    for h in range {
        let mut s = TcpStream::connect(at).map_err(|e| format!("to the launcher: {e}"))?;
        s.write_all(&(h as u16).to_le_bytes()).map_err(|e| e.to_string())?;
        let up = Arc::new(Mutex::new(s.try_clone().map_err(|e| e.to_string())?));
        let report = Box::new(move |f: Vec<u8>| {
            if let Ok(mut s) = up.lock() {
                let _ = s.write_all(&f);
            }
        });
        let ranks = (0..size).filter(|r| host_of[*r] as usize == h).map(|r| r as u32).collect();
        let cfg = GathererConfig {
            token,
            size,
            host: h as u16,
            name: format!("sim-host-{h}"),
            ranks,
            deadline: by,
        };
        let g = gatherer::start(SocketAddr::from(([127, 0, 0, 1], 0)), cfg, report)
            .map_err(|e| format!("gatherer: {e}"))?;
        addrs.push(g.addr);
        links.push((s, g));
    }
    // The gatherers keep answering look-ups until the caller drops what the relay returns.
    let relay = thread::spawn(move || {
        for (s, g) in &links {
            let f = read_frame(s, by + Duration::from_secs(5))?;
            g.handle.deliver(f);
        }
        Ok(links)
    });
    Ok((addrs, relay))
}

/// Rank `r`: registers at `gatherer`, checks its go, looks up the next host and checks that.
fn rank(
    r: usize,
    host_of: &[u16],
    gatherer: SocketAddr,
    token: JobToken,
    by: Instant,
) -> Result<(), String> {
    let size = host_of.len();
    let h = host_of[r];
    let me = endpoint(r, h);
    let go = client::register(gatherer, token, r, size, &me, by)
        .map_err(|e| format!("rank {r}: registering: {e}"))?;
    let want = |host: u16| -> Vec<(u32, Endpoint)> {
        (0..size).filter(|j| host_of[*j] == host).map(|j| (j as u32, endpoint(j, host))).collect()
    };
    if go.local != want(h) {
        return Err(format!("rank {r}: wrong local entries"));
    }
    if go.placement.host_of() != host_of {
        return Err(format!("rank {r}: wrong placement"));
    }
    let hosts = go.placement.hosts.len();
    let next = ((h as usize + 1) % hosts) as u16;
    let info = &go.placement.hosts[next as usize];
    if info.label != format!("sim-host-{next}") {
        return Err(format!("rank {r}: host {next} is labelled {}", info.label));
    }
    let got = client::lookup(info.directory, token, r, next, host_of, by)
        .map_err(|e| format!("rank {r}: look-up of host {next}: {e}"))?;
    if got != want(next) {
        return Err(format!("rank {r}: wrong entries from host {next}"));
    }
    Ok(())
}

/// Runs the ranks of hosts `range` as threads; returns when all are checked.
fn ranks(
    host_of: &Arc<[u16]>,
    gatherers: &[SocketAddr],
    range: std::ops::Range<usize>,
    token: JobToken,
    by: Instant,
) -> Result<(), String> {
    let first = range.start;
    let mine: Vec<usize> =
        (0..host_of.len()).filter(|r| range.contains(&(host_of[*r] as usize))).collect();
    let threads: Vec<_> = mine
        .into_iter()
        .map(|r| {
            let host_of = host_of.clone();
            let g = gatherers[host_of[r] as usize - first];
            thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || rank(r, &host_of, g, token, by))
                .map_err(|e| format!("spawning rank {r}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let mut errors = Vec::new();
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(_) => errors.push("a rank thread panicked".into()),
        }
    }
    match errors.first() {
        None => Ok(()),
        Some(e) => Err(format!("{} ranks failed, first: {e}", errors.len())),
    }
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn env_usize(k: &str, default: usize) -> usize {
    std::env::var(k).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

#[test]
fn simulated_agent_small() {
    // Uneven, interleaved placement: runs of 3 ranks, round robin over 16 hosts.
    let size = env_usize("SIM_SMALL", 256);
    let hosts = size / 16;
    let host_of: Arc<[u16]> = (0..size).map(|r| ((r / 3) % hosts) as u16).collect();
    let token = JobToken::generate();
    let by = Instant::now() + Duration::from_secs(60);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = l.local_addr().unwrap();
    let h2 = host_of.to_vec();
    let launcher = thread::spawn(move || launcher(l, h2, hosts, by));
    let (gatherers, relay) = agents(at, &host_of, 0..hosts, token, by).unwrap();
    ranks(&host_of, &gatherers, 0..hosts, token, by).unwrap();
    let stats = launcher.join().unwrap().unwrap();
    // One report in per host; the same placement out to each.
    assert!(stats.bytes_in < hosts * 64, "{stats:?}");
    assert_eq!(stats.bytes_out % hosts, 0);
    drop(relay.join().unwrap().unwrap());
}

#[test]
fn a_rank_that_never_registers_fails_its_host_and_the_others_hear_why() {
    let token = JobToken::generate();
    let by = Instant::now() + Duration::from_millis(1500);
    let (tx, rx) = std::sync::mpsc::channel();
    let report = Box::new(move |f: Vec<u8>| {
        let _ = tx.send(f);
    });
    let cfg = GathererConfig {
        token,
        size: 3,
        host: 0,
        name: "h0".into(),
        ranks: vec![0, 2],
        deadline: by,
    };
    let g = gatherer::start(SocketAddr::from(([127, 0, 0, 1], 0)), cfg, report).unwrap();
    let e = client::register(g.addr, token, 0, 3, &endpoint(0, 0), by).unwrap_err();
    assert!(e.contains("1 of 2 ranks on h0 never registered") && e.contains(": 2"), "{e}");
    let f = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let mut c = Collector::new(vec![0, 1, 0], vec!["h0".into(), "h1".into()]).unwrap();
    let e = c.on_frame(0, &f).unwrap_err();
    assert!(e.starts_with("h0: 1 of 2 ranks"), "{e}");
    g.handle.stop();
    g.thread.join().unwrap();
}

#[test]
fn malformed_and_foreign_frames_are_refused_with_a_reason() {
    let token = JobToken::generate();
    let by = Instant::now() + Duration::from_secs(20);
    let cfg =
        GathererConfig { token, size: 2, host: 0, name: "h0".into(), ranks: vec![0], deadline: by };
    let g = gatherer::start(SocketAddr::from(([127, 0, 0, 1], 0)), cfg, Box::new(|_| {})).unwrap();
    let answer = |bytes: &[u8]| {
        let mut s = TcpStream::connect(g.addr).unwrap();
        s.write_all(bytes).unwrap();
        match Msg::decode(&read_frame(&s, by).unwrap()[4..]).unwrap() {
            Msg::Failed(why) => why,
            other => panic!("{other:?}"),
        }
    };
    assert!(answer(&[2, 0, 0, 0, 99, 1]).contains("malformed"));
    assert!(answer(&u32::MAX.to_le_bytes()).contains("malformed"));
    let other = JobToken::generate();
    let reg = |t: JobToken, rank: u32| {
        Msg::Register { token: *t.as_bytes(), size: 2, rank, endpoint: endpoint(0, 0) }.encode()
    };
    assert!(answer(&reg(other, 0)).contains("wrong job token"));
    assert!(answer(&reg(token, 1)).contains("rank 1 does not run on h0"));
    // A wrong token on a look-up, then a rank whose agent is gone.
    let e = client::lookup(g.addr, other, 1, 0, &[0, 1], by).unwrap_err();
    assert!(e.contains("wrong job token"), "{e}");
    g.handle.stop();
    g.thread.join().unwrap();
    let e = client::register(g.addr, token, 0, 2, &endpoint(0, 0), by).unwrap_err();
    assert!(e.contains("refused"), "{e}");
}

#[test]
fn a_gatherer_rests_while_ranks_that_have_their_go_keep_their_connections() {
    // Ranks busy starting up may close their registration late; until they do, the gatherer
    // must sleep in its poller, not spin.
    let token = JobToken::generate();
    let by = Instant::now() + Duration::from_secs(20);
    let (tx, rx) = std::sync::mpsc::channel();
    let report = Box::new(move |f: Vec<u8>| {
        let _ = tx.send(f);
    });
    let cfg = GathererConfig {
        token,
        size: 2,
        host: 0,
        name: "h0".into(),
        ranks: vec![0, 1],
        deadline: by,
    };
    let g = gatherer::start(SocketAddr::from(([127, 0, 0, 1], 0)), cfg, report).unwrap();
    let ranks: Vec<TcpStream> = (0..2)
        .map(|r| {
            let mut s = TcpStream::connect(g.addr).unwrap();
            let reg = Msg::Register {
                token: *token.as_bytes(),
                size: 2,
                rank: r,
                endpoint: endpoint(r as usize, 0),
            };
            s.write_all(&reg.encode()).unwrap();
            s
        })
        .collect();
    let f = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let mut c = Collector::new(vec![0, 0], vec!["h0".into()]).unwrap();
    g.handle.deliver(c.on_frame(0, &f).unwrap().expect("one host: the placement"));
    for s in &ranks {
        assert!(matches!(Msg::decode(&read_frame(s, by).unwrap()[4..]), Ok(Msg::Go(_))));
    }
    let before = g.wakeups();
    thread::sleep(Duration::from_secs(1));
    let woke = g.wakeups() - before;
    // Its tick is a quarter of a second: a few wake-ups, not thousands.
    assert!(woke < 40, "the gatherer woke {woke} times in a second while idle");
    drop(ranks);
    g.handle.stop();
    g.thread.join().unwrap();
}

/// A child process of [`simulated_agent`]: `SIM_ROLE=agents` or `ranks`.
#[test]
#[ignore = "run by simulated_agent"]
fn sim_role() {
    let Ok(role) = std::env::var("SIM_ROLE") else { return };
    let _ = crate::limits::raise_descriptor_limit();
    let size = env_usize("SIM_RANKS", 16384);
    let per_host = env_usize("SIM_PER_HOST", 16);
    let hosts = size.div_ceil(per_host);
    let host_of: Arc<[u16]> = (0..size).map(|r| (r / per_host) as u16).collect();
    let token = JobToken::from_hex(&std::env::var("SIM_TOKEN").unwrap()).unwrap();
    let by = Instant::now() + Duration::from_secs(120);
    let lo = env_usize("SIM_FROM", 0);
    let hi = env_usize("SIM_TO", hosts);
    let out = std::io::stdout();
    match role.as_str() {
        "agents" => {
            let at: SocketAddr = std::env::var("SIM_LAUNCHER").unwrap().parse().unwrap();
            let (addrs, relay) = agents(at, &host_of, lo..hi, token, by).unwrap();
            let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
            let mut o = out.lock();
            writeln!(o, "GATHERERS {}", list.join(",")).unwrap();
            o.flush().unwrap();
            drop(o);
            // Until the parent closes our stdin.
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            drop(relay.join());
        }
        "ranks" => {
            let gatherers: Vec<SocketAddr> = std::env::var("SIM_GATHERERS")
                .unwrap()
                .split(',')
                .map(|s| s.parse().unwrap())
                .collect();
            ranks(&host_of, &gatherers, lo..hi, token, by).unwrap();
            writeln!(out.lock(), "RANKS OK").unwrap();
        }
        other => panic!("unknown SIM_ROLE {other}"),
    }
}

#[test]
#[ignore = "a benchmark: SIM_RANKS=16384 cargo test --release -p rmpi-transport --lib simulated_agent -- --ignored --nocapture"]
fn simulated_agent() {
    let _ = crate::limits::raise_descriptor_limit();
    let size = env_usize("SIM_RANKS", 16384);
    let per_host = env_usize("SIM_PER_HOST", 16);
    let hosts = size.div_ceil(per_host);
    // A process of each kind per 4 096 ranks keeps each under the descriptor limit.
    let procs = env_usize("SIM_PROCS", size.div_ceil(4096)).clamp(1, hosts);
    let host_of: Vec<u16> = (0..size).map(|r| (r / per_host) as u16).collect();
    let token = JobToken::generate();
    let exe = std::env::current_exe().unwrap();
    let start = Instant::now();
    let by = start + Duration::from_secs(120);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = l.local_addr().unwrap();
    let launcher = thread::spawn(move || launcher(l, host_of, hosts, by));
    let child = |role: &str, k: usize, extra: &[(&str, String)]| {
        let mut c = std::process::Command::new(&exe);
        c.args(["--exact", "directory::sim::sim_role", "--ignored", "--nocapture", "--quiet"])
            .env("SIM_ROLE", role)
            .env("SIM_RANKS", size.to_string())
            .env("SIM_PER_HOST", per_host.to_string())
            .env("SIM_TOKEN", token.to_hex())
            .env("SIM_FROM", (k * hosts / procs).to_string())
            .env("SIM_TO", ((k + 1) * hosts / procs).to_string())
            .stdout(std::process::Stdio::piped())
            .stdin(std::process::Stdio::piped());
        for (k, v) in extra {
            c.env(k, v);
        }
        c.spawn().unwrap()
    };
    let mut agents: Vec<_> =
        (0..procs).map(|k| child("agents", k, &[("SIM_LAUNCHER", at.to_string())])).collect();
    let mut rank_procs = Vec::new();
    // Kept open to the end: a child whose harness writes into a closed pipe exits early.
    let mut outputs = Vec::new();
    for (k, a) in agents.iter_mut().enumerate() {
        let mut line = String::new();
        outputs.push(BufReader::new(a.stdout.take().unwrap()));
        let r = outputs.last_mut().unwrap();
        while !line.starts_with("GATHERERS ") {
            line.clear();
            assert!(r.read_line(&mut line).unwrap() > 0, "agents child ended early");
        }
        let list = line.trim_start_matches("GATHERERS ").trim().to_string();
        rank_procs.push(child("ranks", k, &[("SIM_GATHERERS", list)]));
    }
    let stats = launcher.join().unwrap().unwrap();
    for mut p in rank_procs {
        let mut s = String::new();
        p.stdout.take().unwrap().read_to_string(&mut s).unwrap();
        assert!(p.wait().unwrap().success() && s.contains("RANKS OK"), "{s}");
    }
    let checked = start.elapsed();
    for mut a in agents {
        drop(a.stdin.take());
        let _ = a.wait();
    }
    eprintln!(
        "simulated directory bootstrap: {size} ranks on {hosts} hosts ({procs}+{procs} child \
         processes): go sent after {:.2} s, every rank checked after {:.2} s; launcher \
         {} bytes in, {} bytes out, launcher peak RSS {} MiB; load {}",
        (stats.go_sent - start).as_secs_f64(),
        checked.as_secs_f64(),
        stats.bytes_in,
        stats.bytes_out,
        peak_rss_kib() / 1024,
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
}
