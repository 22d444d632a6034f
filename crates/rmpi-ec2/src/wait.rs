//! `--wait N`: poll until N matching instances are running, have their address and (optionally)
//! answer on their SSH port, or say what is still missing when the deadline passes.
//!
//! EC2 is eventually consistent: a just-launched instance may be `pending`, may lack its private
//! IP for a while, or may not be listed at all yet. Polls back off (1.5x per round, jittered)
//! between `poll_min` and `poll_max`, never sleeping past the deadline.

use std::io::Read;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::hostfile::AddressKind;
use crate::model::Instance;
use crate::query::Client;
use crate::select::{self, TagSelector};

/// What to wait for.
#[derive(Clone, Debug)]
pub struct WaitSpec {
    /// Instances needed.
    pub count: usize,
    /// Give up after this long.
    pub timeout: Duration,
    /// The address each instance must have.
    pub address: AddressKind,
    /// If set, the SSH port that must answer with an SSH banner.
    pub ssh_port: Option<u16>,
    /// First delay between polls.
    pub poll_min: Duration,
    /// Largest delay between polls.
    pub poll_max: Duration,
}

impl WaitSpec {
    /// A spec with the default poll delays (2 s growing to 15 s).
    pub fn new(
        count: usize,
        timeout: Duration,
        address: AddressKind,
        ssh_port: Option<u16>,
    ) -> Self {
        Self {
            count,
            timeout,
            address,
            ssh_port,
            poll_min: Duration::from_secs(2),
            poll_max: Duration::from_secs(15),
        }
    }
}

/// The result of looking at the instances once.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Assessment {
    /// Instances that have everything.
    pub ready: Vec<Instance>,
    /// `(instance id, what it lacks)` for the others.
    pub lacking: Vec<(String, String)>,
}

impl Assessment {
    /// One line: `2 of 4 ready; i-1: state pending; i-2: no private IP yet; 1 not listed yet`.
    pub fn summary(&self, wanted: usize) -> String {
        let mut parts = vec![format!("{} of {wanted} ready", self.ready.len())];
        parts.extend(self.lacking.iter().map(|(id, what)| format!("{id}: {what}")));
        let listed = self.ready.len() + self.lacking.len();
        if listed < wanted {
            parts.push(format!("{} not listed by EC2 yet", wanted - listed));
        }
        parts.join("; ")
    }
}

/// A check of one address's SSH port: `Err` says what is wrong.
pub type Probe<'a> = &'a mut dyn FnMut(&str) -> std::result::Result<(), String>;

/// Sorts `instances` into ready and lacking. `probe` checks the SSH port of an address.
pub fn assess(
    instances: Vec<Instance>,
    address: AddressKind,
    mut probe: Option<Probe<'_>>,
) -> Assessment {
    let mut out = Assessment::default();
    for instance in instances {
        let lack = if instance.state != "running" {
            Some(format!(
                "state {}",
                if instance.state.is_empty() { "unknown" } else { &instance.state }
            ))
        } else if let Some(host) = address.of(&instance) {
            match probe.as_mut() {
                Some(probe) => probe(host).err().map(|e| format!("SSH {e}")),
                None => None,
            }
        } else {
            Some(format!("no {} yet", address.describe()))
        };
        match lack {
            Some(what) => out.lacking.push((instance.id.clone(), what)),
            None => out.ready.push(instance),
        }
    }
    out
}

/// Connects to `host:port` and expects an SSH identification line (`SSH-...`) within `timeout`.
pub fn probe_ssh(host: &str, port: u16, timeout: Duration) -> std::result::Result<(), String> {
    let target = format!("{}:{port}", host.trim_start_matches('[').trim_end_matches(']'));
    let addrs: Vec<_> = (host.trim_start_matches('[').trim_end_matches(']'), port)
        .to_socket_addrs()
        .map_err(|e| format!("{target}: cannot resolve: {e}"))?
        .collect();
    let mut last = format!("{target}: no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(mut stream) => {
                stream.set_read_timeout(Some(timeout)).map_err(|e| format!("{target}: {e}"))?;
                let mut banner = [0u8; 4];
                return match stream.read_exact(&mut banner) {
                    Ok(()) if &banner == b"SSH-" => Ok(()),
                    Ok(()) => Err(format!("port {port} answers but is not an SSH server")),
                    Err(e) => Err(format!("port {port} sent no SSH banner ({e})")),
                };
            }
            Err(e) => last = format!("port {port} not answering ({e})"),
        }
    }
    Err(last)
}

/// Polls DescribeInstances (states `pending` and `running`) until `spec.count` instances are
/// ready, then returns the ready ones (sorted by `order_tag`). `progress` receives a line each
/// time the situation changes.
pub fn wait(
    client: &Client,
    selectors: &[TagSelector],
    order_tag: &str,
    page_size: Option<u32>,
    spec: &WaitSpec,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Instance>> {
    let states = ["pending", "running"];
    let filters = select::filters(selectors, &states);
    let start = Instant::now();
    let deadline = start + spec.timeout;
    let mut delay = spec.poll_min;
    let mut last_summary = String::new();
    loop {
        let mut instances: Vec<Instance> = client
            .describe_instances(&filters, page_size)?
            .into_iter()
            .filter(|i| select::matches(i, selectors, &states))
            .collect();
        select::sort(&mut instances, order_tag);
        select::dedup(&mut instances);
        let probe_timeout = Duration::from_secs(3);
        let mut probe = |host: &str| match spec.ssh_port {
            Some(port) => probe_ssh(host, port, probe_timeout),
            None => Ok(()),
        };
        let assessment = assess(instances, spec.address, Some(&mut probe));
        if assessment.ready.len() >= spec.count {
            progress(&format!(
                "{} instances ready after {}s",
                assessment.ready.len(),
                start.elapsed().as_secs()
            ));
            return Ok(assessment.ready);
        }
        let summary = assessment.summary(spec.count);
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::WaitTimeout {
                waited_secs: start.elapsed().as_secs(),
                wanted: spec.count,
                missing: summary,
            });
        }
        if summary != last_summary {
            progress(&format!("waiting ({}s): {summary}", start.elapsed().as_secs()));
            last_summary = summary;
        }
        let jittered = delay.mul_f64(rand::random_range(0.8..=1.2));
        std::thread::sleep(jittered.min(deadline - now));
        delay = delay.mul_f64(1.5).min(spec.poll_max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    fn instance(id: &str, state: &str, ip: Option<&str>) -> Instance {
        Instance {
            id: id.into(),
            instance_type: "t3.micro".into(),
            state: state.into(),
            private_ip: ip.map(Into::into),
            public_ip: None,
            private_dns: None,
            public_dns: None,
            ipv6: None,
            launch_time: None,
            tags: vec![],
        }
    }

    #[test]
    fn assessment_names_what_each_instance_lacks() {
        let list = vec![
            instance("i-1", "running", Some("10.0.0.1")),
            instance("i-2", "pending", None),
            instance("i-3", "running", None),
            instance("i-4", "running", Some("10.0.0.4")),
        ];
        let mut probe = |host: &str| {
            if host == "10.0.0.4" {
                Err("port 22 not answering (refused)".to_string())
            } else {
                Ok(())
            }
        };
        let a = assess(list, AddressKind::PrivateIp, Some(&mut probe));
        assert_eq!(a.ready.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["i-1"]);
        assert_eq!(
            a.summary(5),
            "1 of 5 ready; i-2: state pending; i-3: no private IP yet; \
             i-4: SSH port 22 not answering (refused); 1 not listed by EC2 yet"
        );
    }

    #[test]
    fn probe_accepts_ssh_banner_and_rejects_others() {
        let ssh = TcpListener::bind("127.0.0.1:0").unwrap();
        let other = TcpListener::bind("127.0.0.1:0").unwrap();
        let (ssh_port, other_port) =
            (ssh.local_addr().unwrap().port(), other.local_addr().unwrap().port());
        let server = std::thread::spawn(move || {
            let (mut s, _) = ssh.accept().unwrap();
            s.write_all(b"SSH-2.0-OpenSSH_9.2p1\r\n").unwrap();
            let (mut o, _) = other.accept().unwrap();
            o.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap();
        });
        let timeout = Duration::from_secs(5);
        assert_eq!(probe_ssh("127.0.0.1", ssh_port, timeout), Ok(()));
        let err = probe_ssh("127.0.0.1", other_port, timeout).unwrap_err();
        assert!(err.contains("not an SSH server"), "{err}");
        server.join().unwrap();
        // Nothing listens on a port whose listener was just dropped.
        let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let err = probe_ssh("127.0.0.1", closed, timeout).unwrap_err();
        assert!(err.contains("not answering"), "{err}");
    }

    #[test]
    fn probe_times_out_on_silent_server() {
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = silent.local_addr().unwrap().port();
        let started = Instant::now();
        let err = probe_ssh("127.0.0.1", port, Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("sent no SSH banner"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(silent);
    }
}
