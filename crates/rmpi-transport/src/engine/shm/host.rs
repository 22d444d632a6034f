//! Which ranks are on "one host": the same kernel boot and the same network, PID and user
//! namespaces, read from the kernel (never from host names).

use std::os::unix::fs::MetadataExt;

use crate::wire::HostId;

/// This process's host identity, or `None` when `/proc` does not tell.
pub(crate) fn host_id() -> Option<HostId> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let boot_id = parse_boot_id(&boot)?;
    let net_ns = std::fs::metadata("/proc/self/ns/net").ok()?.ino();
    let pid_ns = std::fs::metadata("/proc/self/ns/pid").ok()?.ino();
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    Some(HostId { boot_id, net_ns, pid_ns, uid })
}

/// The 16 bytes of a boot id such as `2f1e0c3a-5b6d-4e7f-8a9b-0c1d2e3f4a5b`.
fn parse_boot_id(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.trim().bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let digits = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(digits, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_ids_parse_and_garbage_does_not() {
        let id = parse_boot_id("2f1e0c3a-5b6d-4e7f-8a9b-0c1d2e3f4a5b\n").unwrap();
        assert_eq!(id[0], 0x2f);
        assert_eq!(id[15], 0x5b);
        assert_eq!(parse_boot_id("2f1e"), None);
        assert_eq!(parse_boot_id("zz1e0c3a-5b6d-4e7f-8a9b-0c1d2e3f4a5b"), None);
    }

    #[test]
    fn this_process_has_a_stable_host_id() {
        // Debian's /proc has all three; the identity does not change between reads.
        let a = host_id().expect("host id");
        assert_eq!(Some(a), host_id());
    }
}
