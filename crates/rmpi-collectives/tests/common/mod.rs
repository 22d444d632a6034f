//! Helpers shared by the integration tests: a watchdog, deterministic inputs, serial references.

#![allow(dead_code)]

use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rmpi_collectives::ops::{Arith, Ordered};
use rmpi_collectives::Op;
use rmpi_transport::Pod;

/// Runs `f` on its own thread and fails the test if it takes longer than `secs`.
pub fn with_timeout<R: Send + 'static>(secs: u64, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(r) => {
            let _ = h.join();
            r
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("test did not finish within {secs} s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match h.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => panic!("test thread ended without a result"),
        },
    }
}

/// Element types the reference tests run on; values are small integers so float sums are exact.
pub trait Num: Pod + PartialEq + std::fmt::Debug + Arith + Ordered + Send + Sync {
    fn from_i64(v: i64) -> Self;
}

macro_rules! num {
    ($($t:ty),*) => {$(
        impl Num for $t {
            fn from_i64(v: i64) -> Self {
                v as $t
            }
        }
    )*};
}
num!(i32, u64, f32, f64);

/// Rank `rank`'s input of `n` elements for test `seed`.
pub fn input<T: Num>(rank: usize, n: usize, seed: u64) -> Vec<T> {
    (0..n)
        .map(|i| {
            let h = (rank as u64 + 1)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add((i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9))
                .wrapping_add(seed.wrapping_mul(0x94D0_49BB_1331_11EB));
            T::from_i64(((h >> 40) % 199) as i64 - 99)
        })
        .collect()
}

/// The reduction of every rank's input in rank order, done serially.
pub fn reference<T: Num, O: Op<T>>(p: usize, n: usize, seed: u64, op: &O) -> Vec<T> {
    let mut acc = input::<T>(0, n, seed);
    for r in 1..p {
        op.combine(&mut acc, &input::<T>(r, n, seed));
    }
    acc
}

/// Prefix reductions in rank order: element r is `x0 ∘ ... ∘ xr`.
pub fn prefixes<T: Num, O: Op<T>>(p: usize, n: usize, seed: u64, op: &O) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut acc = input::<T>(0, n, seed);
    out.push(acc.clone());
    for r in 1..p {
        op.combine(&mut acc, &input::<T>(r, n, seed));
        out.push(acc.clone());
    }
    out
}

/// Collects failures as strings so that a rank never panics while others wait for it.
#[derive(Default)]
pub struct Failures(pub Vec<String>);

impl Failures {
    pub fn eq<T: PartialEq + std::fmt::Debug>(
        &mut self,
        what: impl FnOnce() -> String,
        got: &[T],
        want: &[T],
    ) {
        if got != want {
            let i =
                got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
            self.0.push(format!(
                "{}: length {} vs {}, first difference at {i}: {:?} vs {:?}",
                what(),
                got.len(),
                want.len(),
                got.get(i),
                want.get(i)
            ));
        }
    }
}

/// Waits for a child process until `deadline`, then kills it: its exit code, `None` when it was
/// killed or died of a signal.
pub fn wait_with_deadline(c: &mut Child, deadline: Instant) -> Option<i32> {
    loop {
        match c.try_wait() {
            Ok(Some(st)) => return st.code(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
        }
    }
}
