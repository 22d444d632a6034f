//! The host name a rank reports: its host's own, next to the launcher's name for it.

#[test]
fn processor_name_is_the_hosts_own_name_and_host_of_the_launchers() {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("kernel hostname");
    let names = rmpi::local::run(2, |w| Ok((w.processor_name(), w.host_of(w.rank())?))).unwrap();
    for (rank, (processor, launcher)) in names.iter().enumerate() {
        assert_eq!(processor, kernel.trim(), "rank {rank}");
        // local::run labels its ranks like a hostfile would.
        assert_eq!(launcher, &format!("local{rank}"));
    }
}
