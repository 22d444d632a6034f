//! The system calls shared memory needs, each behind a small safe function: the segment's memfd,
//! the futex the leader waits on, the pidfds that watch local peers, and the single-copy read
//! of a peer's memory (`process_vm_readv`) with the `prctl` that allows it under Yama.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// A fresh memfd named `rmpi-segment` (close-on-exec).
pub(super) fn memfd() -> io::Result<OwnedFd> {
    // SAFETY: memfd_create with a NUL-terminated name; the result is checked.
    let fd = unsafe { libc::memfd_create(c"rmpi-segment".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sleeps while `word` holds `seen`, at most `timeout` (a shared futex: other processes wake it).
pub(super) fn futex_wait(word: &AtomicU32, seen: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: FUTEX_WAIT reads the aligned u32 behind `word` and the timespec; both outlive the
    // call. Errors (EAGAIN: the value changed; EINTR; ETIMEDOUT) all mean "look again".
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, seen, &ts as *const _, 0, 0)
    };
}

/// Wakes every waiter on `word`.
pub(super) fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX, 0, 0, 0) };
}

/// A descriptor that becomes readable when process `pid` exits.
pub(super) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Lets any process of this user read this one's memory, as Yama's `ptrace_scope` 1 otherwise
/// allows only to ancestors (what Open MPI does for its single copy). Without Yama the call
/// fails with `EINVAL` and nothing needs allowing: the result is only a hint.
pub(super) fn allow_any_reader() -> io::Result<()> {
    // SAFETY: PR_SET_PTRACER takes a pid (or PR_SET_PTRACER_ANY) and no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_PTRACER, libc::PR_SET_PTRACER_ANY, 0, 0, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Copies `into.len()` bytes (or fewer: the count is returned) from address `from` of process
/// `pid` into `into`, in one system call. `ESRCH`: the process is gone; `EFAULT`: the range is
/// not mapped there; `EPERM`: the kernel does not allow it.
pub(super) fn read_process(pid: u32, from: u64, into: &mut [u8]) -> io::Result<usize> {
    if into.is_empty() {
        return Ok(0);
    }
    let local = libc::iovec { iov_base: into.as_mut_ptr().cast(), iov_len: into.len() };
    let remote = libc::iovec { iov_base: from as usize as *mut libc::c_void, iov_len: into.len() };
    // SAFETY: `local` describes memory we own exclusively for the call; the remote range is only
    // read, by the kernel, which checks it against the other process's mappings.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_reads_its_own_memory_and_not_an_unmapped_range() {
        let src = [5u8, 6, 7, 8];
        let mut dst = [0u8; 4];
        let n = read_process(std::process::id(), src.as_ptr() as u64, &mut dst).expect("read");
        assert_eq!((n, dst), (4, [5, 6, 7, 8]));
        let e = read_process(std::process::id(), 8, &mut dst).expect_err("page 0 is unmapped");
        assert_eq!(e.raw_os_error(), Some(libc::EFAULT));
        let _ = allow_any_reader();
    }
}
