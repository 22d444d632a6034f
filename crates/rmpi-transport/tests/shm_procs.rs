//! Shared memory between real processes: ranks are this test binary run again as children
//! (`ROLE` in their environment picks what they do), joined through a real rendezvous. Each
//! child prints lines the parent waits for; the parent kills children with SIGKILL where a test
//! says so. Under `RMPI_SHM=0` the same tests run over TCP and must hold as well. Large
//! messages move in one copy from the sender's memory (`process_vm_readv`) unless
//! `RMPI_SHM_CMA=0`; the tests about them run both ways.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rmpi_transport::rendezvous::RendezvousServer;
use rmpi_transport::token::JobToken;
use rmpi_transport::{env, Any, Communicator, Error};

const ROLE: &str = "RMPI_SHM_TEST_ROLE";
const LIMIT: Duration = Duration::from_secs(20);
/// A message far larger than a ring, so its sender is mid-message for a while.
const LARGE: usize = 64 << 20;

/// A rank of a job started by [`job`]: its process and the lines it prints.
struct Rank {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Rank {
    /// Waits for the next line the rank prints.
    fn line(&self) -> String {
        match self.lines.recv_timeout(LIMIT) {
            Ok(l) => l,
            Err(e) => {
                panic!("rank (pid {}) printed nothing within {LIMIT:?}: {e}", self.child.id())
            }
        }
    }

    /// Lets a rank that waits for the parent go on.
    fn go(&mut self) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(b"go\n").expect("writing to the rank");
    }

    /// Waits for the rank to exit; its exit code.
    fn exit_code(mut self) -> Option<i32> {
        // The output thread ends when the rank closes its stdout, i.e. when it exits.
        while self.lines.recv_timeout(LIMIT).is_ok() {}
        self.child.wait().expect("wait").code()
    }
}

impl Drop for Rank {
    /// A failed test leaves no rank behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `n` ranks of a job in which rank `r` plays `roles[r]`.
fn job(roles: &[&str]) -> Vec<Rank> {
    job_with(roles, &[])
}

/// [`job`], with `vars` added to every rank's environment.
fn job_with(roles: &[&str], vars: &[(&str, &str)]) -> Vec<Rank> {
    job_each(roles, vars, &[])
}

/// [`job_with`], with `own[r]` added to rank `r`'s environment as well.
fn job_each(roles: &[&str], vars: &[(&str, &str)], own: &[&[(&str, &str)]]) -> Vec<Rank> {
    let n = roles.len();
    let token = JobToken::generate();
    let rv = RendezvousServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), n, token, LIMIT)
        .expect("rendezvous");
    let addr = rv.local_addr();
    rv.spawn();
    let exe = std::env::current_exe().expect("test binary");
    (0..n)
        .map(|r| {
            let mut child = Command::new(&exe)
                .args(["--exact", "child", "--nocapture", "--test-threads", "1"])
                .env(ROLE, roles[r])
                .env(env::SIZE, n.to_string())
                .env(env::RANK, r.to_string())
                .env(env::TOKEN, token.to_hex())
                .env(env::RENDEZVOUS, addr.to_string())
                .env(env::LOCAL_SIZE, n.to_string())
                .env(env::HOST, "here")
                .env(env::BOOT_TIMEOUT, "30")
                .envs(vars.iter().copied())
                .envs(own.get(r).copied().unwrap_or_default().iter().copied())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("starting a rank");
            let out = child.stdout.take().expect("stdout");
            let (tx, lines) = mpsc::channel();
            std::thread::spawn(move || {
                for l in BufReader::new(out).lines().map_while(|l| l.ok()) {
                    // Only the rank's own lines; the test harness prints its own too, and the
                    // first of ours follows its `test child ... ` on the same line.
                    if let Some(at) = l.find("rank: ") {
                        if tx.send(l[at + 6..].to_string()).is_err() {
                            break;
                        }
                    }
                }
            });
            Rank { child, lines }
        })
        .collect()
}

fn say(s: &str) {
    println!("rank: {s}");
}

/// The child side: joins, plays its role, and exits with 0 when the role's outcome held.
#[test]
fn child() {
    let Ok(role) = std::env::var(ROLE) else { return };
    let w = Communicator::init().expect("joining");
    let peer = 1 - w.rank();
    let outcome: Result<(), String> = match role.as_str() {
        // Sends a large message and is killed while sending it.
        "large-sender" => {
            say("sending");
            let _ = w.send(&vec![7u8; LARGE], peer, 1);
            Err("the send finished although the sender should be dead".into())
        }
        // Waits for a large message whose sender dies mid-message: once its header is in (the
        // payload cannot be: it is far larger than what the transport buffers), it stops making
        // progress until the parent, having killed the sender, says go.
        "large-receiver" => match w.probe(Some(peer), Some(1)) {
            Ok(st) if st.len == LARGE => {
                say("mid-message");
                let mut go = String::new();
                let _ = std::io::stdin().read_line(&mut go);
                let mut buf = vec![0u8; LARGE];
                expect_lost(w.recv_into(&mut buf, peer, 1), peer)
            }
            other => Err(format!("probe: {other:?}")),
        },
        // Waits in a receive for a message that never comes and is killed.
        "idle" => {
            say("ready");
            let _ = w.recv::<u8>(peer, 9);
            Err("the receive finished although the peer sent nothing".into())
        }
        // Waits for a small message from a peer that is killed, then for any source.
        "small-receiver" => {
            say("ready");
            expect_lost(w.recv::<u64>(peer, 2).map(|_| ()), peer)
                .and_then(|()| expect_lost(w.recv::<u64>(Any, Any).map(|_| ()), peer))
        }
        // Exchanges messages and finalizes normally, reporting the descriptors it holds.
        "normal" => {
            let got = w.sendrecv::<u64, u64>(&[w.rank() as u64], peer, 3, peer, 3);
            say(&format!("segment descriptors {}", segment_fds()));
            match got {
                Ok((v, _)) if v == vec![peer as u64] => Ok(()),
                other => Err(format!("exchange: {other:?}")),
            }
        }
        // Exchanges messages, then crashes (SIGABRT) without finalizing.
        "crash" => {
            let _ = w.sendrecv::<u8, u8>(&[0u8; 4096], peer, 4, peer, 4);
            say("crashing");
            std::process::abort();
        }
        // Exchanges messages around and far above the single-copy threshold with its peer, both
        // ways at once: borrowed by a scope (lent in place) and by a plain isend (copied out of
        // the caller's buffer while it may be lent); every byte is checked.
        "exchange-large" => exchange_large(&w, peer),
        // Streams messages until killed.
        "stream" => {
            say("streaming");
            loop {
                if w.sendrecv::<u8, u8>(&[0u8; 4096], peer, 4, peer, 4).is_err() {
                    break Ok(());
                }
            }
        }
        // Sends a flood, eager and announced messages in turn, then one on another tag.
        "flooder" => {
            let mut out = Ok(());
            for i in 0..FLOOD_MESSAGES {
                let mut m = vec![0u8; flood_len(i)];
                m[..8].copy_from_slice(&(i as u64).to_le_bytes());
                if let Err(e) = w.send(&m, peer, 10) {
                    out = Err(format!("flood message {i}: {e}"));
                    break;
                }
            }
            out.and_then(|()| w.send(&[1u8], peer, 11).map_err(|e| e.to_string()))
        }
        // Waits a while for the message behind the flood (no receive for the flood posted),
        // reports the most memory it ever held, then takes the flood and that message.
        "flood-receiver" => {
            let last = w.irecv::<u8>(peer, 11).expect("posting");
            let last = match last.wait_timeout(Duration::from_secs(3)) {
                Ok(Err(r)) => r,
                other => panic!("the message behind the flood came first: {other:?}"),
            };
            say(&format!("peak {} KiB", status_kib("VmHWM")));
            let mut out = Ok(());
            for i in 0..FLOOD_MESSAGES {
                match w.recv::<u8>(peer, 10) {
                    Ok((m, st)) if st.len == flood_len(i) && m[..8] == (i as u64).to_le_bytes() => {
                    }
                    other => {
                        out = Err(format!("flood message {i}: {:?}", other.map(|(_, st)| st)));
                        break;
                    }
                }
            }
            out.and_then(|()| last.wait().map(|_| ()).map_err(|e| e.to_string()))
        }
        // Floods a peer whose unexpected limit is far below its own, with eager limits that
        // would send every message eagerly, then sends one on another tag.
        "greedy-flooder" => send_numbered(&w, peer, (GREEDY_MESSAGES, GREEDY_LEN), false),
        // Waits a while for the message behind the flood, reports how much its memory grew
        // meanwhile, then takes the flood (every message checked) and that message.
        "small-grant-receiver" => {
            let start = status_kib("VmHWM");
            let last = w.irecv::<u8>(peer, 11).expect("posting");
            let last = match last.wait_timeout(Duration::from_secs(3)) {
                Ok(Err(r)) => r,
                other => panic!("the message behind the flood came first: {other:?}"),
            };
            say(&format!("grew {} KiB", status_kib("VmHWM").saturating_sub(start)));
            take_numbered(&w, peer, GREEDY_MESSAGES, GREEDY_LEN)
                .and_then(|()| last.wait().map(|_| ()).map_err(|e| e.to_string()))
        }
        // Starts large sends nobody has asked for, lets go of their requests, sends one more
        // message on another tag and finalizes (see the end of this function).
        "isend-finalizer" => send_numbered(&w, peer, (LATE_MESSAGES, LATE_LEN), true),
        // Takes the message sent after those large ones, makes progress for 2 s without a
        // receive for them (the sender finalizes meanwhile), reports how much its memory grew,
        // then receives them all, late.
        "late-receiver" => {
            let start = status_kib("VmHWM");
            match w.recv::<u8>(peer, 11) {
                Ok((m, _)) if m == [1u8] => {}
                other => panic!("the last message: {other:?}"),
            }
            let since = std::time::Instant::now();
            while since.elapsed() < Duration::from_secs(2) {
                // Looking makes progress: whatever the sender pushes is read meanwhile.
                let _ = w.iprobe(peer, 12);
                std::thread::sleep(Duration::from_millis(10));
            }
            say(&format!("grew {} KiB", status_kib("VmHWM").saturating_sub(start)));
            take_numbered(&w, peer, LATE_MESSAGES, LATE_LEN)
        }
        // Takes the message sent after the large ones and finalizes without taking those.
        "last-only" => match w.recv::<u8>(peer, 11) {
            Ok((m, _)) if m == [1u8] => Ok(()),
            other => Err(format!("the last message: {other:?}")),
        },
        // Takes the message sent after the large ones and waits to be killed.
        "last-then-hang" => {
            let _ = w.recv::<u8>(peer, 11);
            say("ready");
            let mut go = String::new();
            let _ = std::io::stdin().read_line(&mut go);
            Err("not killed".into())
        }
        other => Err(format!("unknown role {other}")),
    };
    let code = match outcome {
        Ok(()) => {
            let _ = w.finalize();
            say("ok");
            0
        }
        Err(why) => {
            say(&format!("failed: {why}"));
            1
        }
    };
    std::process::exit(code);
}

/// Messages of the flood in [`ranks_with_other_flow_settings_each_keep_their_own_bound`]:
/// 128 MiB in all, each one eager by the flooder's limits.
const GREEDY_MESSAGES: usize = 256;
const GREEDY_LEN: usize = 512 << 10;
/// The receiver's unexpected limit there (its grant to its one peer).
const SMALL_GRANT: usize = 4 << 20;

/// Messages sent with `isend` and let go of before finalize in the tests of
/// [`a_finalizing_sender_pushes_nothing_and_serves_late_receives`]: 128 MiB in all, each above
/// both eager limits.
const LATE_MESSAGES: usize = 64;
const LATE_LEN: usize = 2 << 20;

/// `len` bytes that say they are message `i`: its number at the start and at the end.
fn numbered(i: usize, len: usize) -> Vec<u8> {
    let mut m = vec![(i % 251) as u8; len];
    m[..8].copy_from_slice(&(i as u64).to_le_bytes());
    m
}

/// Sends `count` messages of [`numbered`] to `peer` on tag 10 (by `isend`, letting go of each
/// request, when `detached`), then one byte on tag 11.
fn send_numbered(
    w: &Communicator,
    peer: usize,
    (count, len): (usize, usize),
    detached: bool,
) -> Result<(), String> {
    for i in 0..count {
        let m = numbered(i, len);
        let sent = if detached { w.isend(&m, peer, 10).map(drop) } else { w.send(&m, peer, 10) };
        sent.map_err(|e| format!("message {i}: {e}"))?;
    }
    w.send(&[1u8], peer, 11).map_err(|e| e.to_string())
}

/// Receives `count` messages of [`numbered`] from `peer` on tag 10, checking each.
fn take_numbered(w: &Communicator, peer: usize, count: usize, len: usize) -> Result<(), String> {
    for i in 0..count {
        match w.recv::<u8>(peer, 10) {
            Ok((m, st)) if st.len == len && m == numbered(i, len) => {}
            other => return Err(format!("message {i}: {:?}", other.map(|(_, st)| st))),
        }
    }
    Ok(())
}

/// The `grew N KiB` a rank reports.
fn growth_kib(line: &str) -> u64 {
    line.strip_prefix("grew ")
        .and_then(|p| p.strip_suffix(" KiB"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
}

/// Bytes that differ for every size, rank and position.
fn pattern(len: usize, rank: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 12) ^ (len + rank * 97)) as u8).collect()
}

fn exchange_large(w: &Communicator, peer: usize) -> Result<(), String> {
    let sizes = [(32 << 10) - 1, 32 << 10, (1 << 20) + 3, 16 << 20];
    for (i, &len) in sizes.iter().enumerate() {
        let mine = pattern(len, w.rank());
        let mut got = vec![0u8; len];
        let tag = i as u64 * 2;
        w.scope(|s| {
            let rx = s.irecv_into(&mut got, peer, tag)?;
            let tx = s.isend(&mine, peer, tag)?;
            tx.wait()?;
            rx.wait()
        })
        .map_err(|e| format!("{len} bytes in a scope: {e}"))?;
        if got != pattern(len, peer) {
            return Err(format!("{len} bytes in a scope arrived damaged"));
        }
        let req = w.isend(&mine, peer, tag + 1).map_err(|e| format!("isend {len}: {e}"))?;
        drop(mine);
        let (back, st) = w.recv::<u8>(peer, tag + 1).map_err(|e| format!("recv {len}: {e}"))?;
        req.wait().map_err(|e| format!("isend {len} wait: {e}"))?;
        if st.len != len || back != pattern(len, peer) {
            return Err(format!("{len} bytes by isend arrived damaged"));
        }
    }
    Ok(())
}

/// Messages in the flood of [`a_flood_nobody_receives_blocks_its_sender_and_stays_bounded`].
const FLOOD_MESSAGES: usize = 7000;

/// First 6000 eager messages (94 MiB, more than the credit), then every other one above the
/// eager limit: about 1.1 GiB in all.
fn flood_len(i: usize) -> usize {
    if i < 6000 || i % 2 == 0 {
        16 << 10
    } else {
        2 << 20
    }
}

/// A `/proc/self/status` figure in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(u64::MAX)
}

fn expect_lost<T: std::fmt::Debug>(
    r: rmpi_transport::Result<T>,
    peer: usize,
) -> Result<(), String> {
    match r {
        Err(Error::PeerLost { rank, .. }) if rank == peer => Ok(()),
        other => Err(format!("expected rank {peer} lost, got {other:?}")),
    }
}

/// Descriptors this process holds on a shared-memory segment.
fn segment_fds() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return 0 };
    dir.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|l| l.to_string_lossy().contains("rmpi-segment"))
        .count()
}

/// Entries of /dev/shm (where POSIX shared memory would leave files).
fn dev_shm() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn kill(rank: &mut Rank) {
    rank.child.kill().expect("SIGKILL");
}

/// `RMPI_SHM_CMA` for each of the two ways large messages move.
const CMA_MODES: [&str; 2] = ["1", "0"];

#[test]
fn large_messages_arrive_intact_in_one_copy_and_through_the_ring() {
    for cma in CMA_MODES {
        for r in job_with(&["exchange-large", "exchange-large"], &[(env::SHM_CMA, cma)]) {
            assert_eq!(r.line(), "ok", "RMPI_SHM_CMA={cma}");
            assert_eq!(r.exit_code(), Some(0));
        }
    }
}

#[test]
fn a_local_peer_killed_mid_large_message_is_named() {
    for cma in CMA_MODES {
        killed_mid_large_message(&[(env::SHM_CMA, cma)]);
    }
}

fn killed_mid_large_message(vars: &[(&str, &str)]) {
    let mut ranks = job_with(&["large-receiver", "large-sender"], vars);
    assert_eq!(ranks[1].line(), "sending");
    assert_eq!(ranks[0].line(), "mid-message");
    kill(&mut ranks[1]);
    // Gone for good (a process still dying may have its memory read: a payload lent in full
    // before the kill would then arrive whole, which is not what this test is about).
    ranks[1].child.wait().expect("wait");
    let mut receiver = ranks.remove(0);
    receiver.go();
    assert_eq!(receiver.line(), "ok");
    assert_eq!(receiver.exit_code(), Some(0));
}

#[test]
fn a_local_peer_killed_while_others_wait_for_small_messages_is_named() {
    let mut ranks = job(&["small-receiver", "idle"]);
    assert_eq!(ranks[0].line(), "ready");
    assert_eq!(ranks[1].line(), "ready");
    kill(&mut ranks[1]);
    let receiver = ranks.remove(0);
    assert_eq!(receiver.line(), "ok");
    assert_eq!(receiver.exit_code(), Some(0));
}

#[test]
fn nothing_is_left_behind_after_exit_crash_or_sigkill_of_all() {
    let before = dev_shm();
    // Normal exit: while running, no rank holds a descriptor on the segment any more.
    for r in job(&["normal", "normal"]) {
        assert_eq!(r.line(), "segment descriptors 0");
        assert_eq!(r.line(), "ok");
        assert_eq!(r.exit_code(), Some(0));
    }
    assert_eq!(dev_shm(), before);
    // A crash: the survivor learns of it and finishes.
    let mut ranks = job(&["crash", "stream"]);
    assert_eq!(ranks[1].line(), "streaming");
    let crashed = ranks.remove(0);
    assert_eq!(crashed.line(), "crashing");
    assert_eq!(crashed.exit_code(), None, "killed by SIGABRT");
    let survivor = ranks.remove(0);
    assert_eq!(survivor.line(), "ok");
    assert_eq!(survivor.exit_code(), Some(0));
    assert_eq!(dev_shm(), before);
    // SIGKILL of every rank in the middle of traffic.
    let mut ranks = job(&["stream", "stream"]);
    for r in &ranks {
        assert_eq!(r.line(), "streaming");
    }
    for r in &mut ranks {
        kill(r);
    }
    for r in ranks {
        assert_eq!(r.exit_code(), None);
    }
    assert_eq!(dev_shm(), before);
}

#[test]
fn a_flood_nobody_receives_blocks_its_sender_and_stays_bounded() {
    // The receiver makes progress for 3 s with no receive posted for the flood: without flow
    // control it would buffer all of it (about 1.1 GiB); with it, the sender blocks once its
    // credit (64 MiB) is used up, and its large messages wait at the sender.
    let ranks = job(&["flood-receiver", "flooder"]);
    let peak = ranks[0].line();
    let kib: u64 = peak
        .strip_prefix("peak ")
        .and_then(|p| p.strip_suffix(" KiB"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {peak:?}"));
    eprintln!("receiver peak: {kib} KiB");
    assert!(kib < 160 << 10, "the receiver held {kib} KiB");
    for r in ranks {
        assert_eq!(r.line(), "ok");
        assert_eq!(r.exit_code(), Some(0));
    }
}

/// Every rank reports its role's outcome held, and exits with 0.
fn all_ok(ranks: Vec<Rank>) {
    for r in ranks {
        assert_eq!(r.line(), "ok");
        assert_eq!(r.exit_code(), Some(0));
    }
}

#[test]
fn ranks_with_other_flow_settings_each_keep_their_own_bound() {
    // The flooder would send every message eagerly and counts on 1 GiB at its peer; the
    // receiver grants 4 MiB. The flooder charges the grant the receiver announced, so the job
    // works and the receiver holds about 4 MiB of the flood, not 128 MiB.
    let grant = SMALL_GRANT.to_string();
    let small: &[(&str, &str)] = &[(env::UNEXPECTED_LIMIT, &grant)];
    let greedy: &[(&str, &str)] = &[
        (env::UNEXPECTED_LIMIT, "1073741824"),
        (env::EAGER_LIMIT, "8388608"),
        (env::SHM_EAGER_LIMIT, "8388608"),
    ];
    let ranks = job_each(&["small-grant-receiver", "greedy-flooder"], &[], &[small, greedy]);
    let kib = growth_kib(&ranks[0].line());
    eprintln!("receiver grew {kib} KiB while the flood waited");
    // The grant, plus room for the engine's own buffers and the shared ring's pages.
    assert!(kib < ((SMALL_GRANT as u64) >> 10) + (8 << 10), "the receiver held {kib} KiB");
    all_ok(ranks);
}

#[test]
fn a_finalizing_sender_pushes_nothing_and_serves_late_receives() {
    // 128 MiB announced and let go of, then finalize: nothing is pushed, so the receiver's
    // memory does not grow by it, and every message still arrives when it is received late.
    let ranks = job(&["late-receiver", "isend-finalizer"]);
    let kib = growth_kib(&ranks[0].line());
    eprintln!("receiver grew {kib} KiB while the sender finalized");
    assert!(kib < 8 << 10, "the receiver held {kib} KiB of messages nobody asked for");
    all_ok(ranks);
}

#[test]
fn a_finalizing_sender_is_let_go_by_the_receivers_goodbye_or_death() {
    // The receiver finalizes without taking the announced messages: both end.
    all_ok(job(&["last-only", "isend-finalizer"]));
    // The receiver is killed while the sender waits in finalize for it: the sender ends.
    let mut ranks = job(&["last-then-hang", "isend-finalizer"]);
    assert_eq!(ranks[0].line(), "ready");
    kill(&mut ranks[0]);
    let sender = ranks.remove(1);
    assert_eq!(sender.line(), "ok");
    assert_eq!(sender.exit_code(), Some(0));
}
