//! Binding ranks to CPUs: which CPUs each rank of a host gets, and setting it on the child.
//!
//! The node agent plans the binding of its own host, so it follows that host's CPUs: the CPUs
//! the agent itself may run on (its affinity mask, which honours `taskset` and cgroup cpusets),
//! grouped into cores by the kernel's topology (`/sys/devices/system/cpu/cpuN/topology`).
//! Local rank i gets unit i (a core, or one hardware thread); with more ranks than units they
//! wrap around. A pinned rank stays on one cache and stops migrating between CPUs, which on a
//! small VM takes most of the swing out of short-message latency.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What each rank is bound to (`rmpirun --bind-to`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum BindTo {
    /// A core each when the host's ranks fit its cores, otherwise no binding.
    #[default]
    Auto,
    /// A core each (all of its hardware threads), wrapping around when ranks outnumber cores.
    Core,
    /// One hardware thread each, wrapping around when ranks outnumber them.
    Hwthread,
    /// No binding: the kernel places the ranks.
    None,
}

/// Where the kernel describes CPU topology.
pub const SYSFS_CPU: &str = "/sys/devices/system/cpu";

/// The CPUs this process may run on, in increasing order.
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: `set` is a plain bit array that sched_getaffinity fills; the size passed is its
    // own size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: CPU_ISSET only reads the bit array.
    Ok((0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
}

/// Groups `cpus` into cores: CPUs with the same package and core id (read under `sysfs`) are
/// one core. A CPU whose topology cannot be read is a core of its own. Cores come in the order
/// of their lowest CPU.
pub fn cores(cpus: &[usize], sysfs: &Path) -> Vec<Vec<usize>> {
    let read = |cpu: usize, what: &str| -> Option<u64> {
        let p = sysfs.join(format!("cpu{cpu}/topology/{what}"));
        std::fs::read_to_string(p).ok()?.trim().parse().ok()
    };
    let mut by_core: BTreeMap<(u64, u64, usize), Vec<usize>> = BTreeMap::new();
    let mut key_of: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    for &cpu in cpus {
        let key = match (read(cpu, "physical_package_id"), read(cpu, "core_id")) {
            (Some(pkg), Some(core)) => {
                let first = *key_of.entry((pkg, core)).or_insert(cpu);
                (pkg, core, first)
            }
            _ => (u64::MAX, cpu as u64, cpu),
        };
        by_core.entry(key).or_default().push(cpu);
    }
    let mut out: Vec<Vec<usize>> = by_core.into_values().collect();
    out.sort_by_key(|c| c.first().copied());
    out
}

/// The CPUs of each of `local_size` ranks under `bind`, given the host's cores; `None` for no
/// binding.
pub fn plan(bind: BindTo, local_size: usize, cores: &[Vec<usize>]) -> Option<Vec<Vec<usize>>> {
    let units: Vec<Vec<usize>> = match bind {
        BindTo::None => return None,
        BindTo::Auto if local_size > cores.len() => return None,
        BindTo::Auto | BindTo::Core => cores.to_vec(),
        BindTo::Hwthread => cores.iter().flatten().map(|&c| vec![c]).collect(),
    };
    if units.is_empty() {
        return None;
    }
    Some((0..local_size).map(|i| units[i % units.len()].clone()).collect())
}

/// `0-3,6`: the kernel's list format (as in `/proc/PID/status`, `taskset -c`).
pub fn format_list(cpus: &[usize]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        let _ = if j == i {
            write!(out, "{}", cpus[i])
        } else {
            write!(out, "{}-{}", cpus[i], cpus[j])
        };
        i = j + 1;
    }
    out
}

/// Makes the child started by `cmd` run only on `cpus` (set between fork and exec, so the
/// program's first instruction already runs there). The spawn fails if the kernel refuses.
pub fn bind_child(cmd: &mut tokio::process::Command, cpus: &[usize]) {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes bits inside it (CPUs beyond
    // CPU_SETSIZE are skipped).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: the closure runs between fork and exec and calls only sched_setaffinity, which
    // is async-signal-safe; `set` is moved into it.
    unsafe {
        cmd.pre_exec(move || {
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sysfs(topology: &[(usize, u64, u64)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for &(cpu, pkg, core) in topology {
            let t = dir.path().join(format!("cpu{cpu}/topology"));
            std::fs::create_dir_all(&t).expect("mkdir");
            std::fs::write(t.join("physical_package_id"), format!("{pkg}\n")).expect("write");
            std::fs::write(t.join("core_id"), format!("{core}\n")).expect("write");
        }
        dir
    }

    #[test]
    fn hyperthreads_of_one_core_group_together() {
        // Two packages, two cores each, two threads per core numbered the Linux way (siblings
        // n and n + 4).
        let topo: Vec<(usize, u64, u64)> =
            (0..8).map(|c| (c, (c % 4 / 2) as u64, (c % 2) as u64)).collect();
        let d = fake_sysfs(&topo);
        let all: Vec<usize> = (0..8).collect();
        assert_eq!(cores(&all, d.path()), vec![vec![0, 4], vec![1, 5], vec![2, 6], vec![3, 7]]);
        // Only the allowed CPUs count.
        assert_eq!(cores(&[1, 2, 5], d.path()), vec![vec![1, 5], vec![2]]);
        // Without topology every CPU is its own core.
        let empty = tempfile::tempdir().expect("temp dir");
        assert_eq!(cores(&[0, 3], empty.path()), vec![vec![0], vec![3]]);
    }

    #[test]
    fn plans_follow_the_policy() {
        let cores = vec![vec![0, 2], vec![1, 3]];
        assert_eq!(plan(BindTo::None, 2, &cores), None);
        assert_eq!(plan(BindTo::Auto, 2, &cores), Some(cores.clone()));
        assert_eq!(plan(BindTo::Auto, 3, &cores), None, "more ranks than cores: no binding");
        assert_eq!(
            plan(BindTo::Core, 3, &cores),
            Some(vec![vec![0, 2], vec![1, 3], vec![0, 2]]),
            "explicit core binding wraps"
        );
        assert_eq!(
            plan(BindTo::Hwthread, 3, &cores),
            Some(vec![vec![0], vec![2], vec![1]]),
            "threads in core order"
        );
        assert_eq!(plan(BindTo::Core, 1, &[]), None);
    }

    #[test]
    fn lists_use_ranges() {
        assert_eq!(format_list(&[]), "");
        assert_eq!(format_list(&[3]), "3");
        assert_eq!(format_list(&[0, 1, 2, 3, 6, 8, 9]), "0-3,6,8-9");
    }

    #[test]
    fn allowed_cpus_match_the_kernels_list() {
        let cpus = allowed_cpus().expect("sched_getaffinity");
        assert!(!cpus.is_empty());
        let status = std::fs::read_to_string("/proc/thread-self/status").expect("status");
        let line = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:"));
        assert_eq!(line.map(str::trim), Some(format_list(&cpus).as_str()));
    }
}
