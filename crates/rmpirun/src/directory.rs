//! rmpirun's two ends of the directory bootstrap (`RMPI_BOOTSTRAP=directory`, the default): the
//! launcher's collector of host reports, and the node agent's gatherer. The frames they pass are
//! opaque here (`rmpi_transport::directory::wire`), carried by the control protocol as
//! [`Command::Directory`] and [`Event::Directory`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use rmpi_transport::directory::gatherer::{self, Gatherer, GathererConfig};
use rmpi_transport::directory::launcher::Collector;
use rmpi_transport::token::JobToken;
use tokio::sync::mpsc;

use crate::protocol::{Event, JobSpec};

/// The launcher's side: which compact host index each used host has, and the collector.
pub(crate) struct Directory {
    index: HashMap<usize, u16>,
    collector: Collector,
}

impl Directory {
    /// For the hosts `used` (host indices, in order) and the placement `placement` (host index
    /// of each rank); `names` names every host.
    pub(crate) fn new(
        used: &[usize],
        placement: &[usize],
        names: Vec<String>,
    ) -> Result<Directory, String> {
        if used.len() > u16::MAX as usize {
            return Err(format!("{} hosts: the directory takes at most 65535", used.len()));
        }
        let index: HashMap<usize, u16> =
            used.iter().enumerate().map(|(i, h)| (*h, i as u16)).collect();
        let host_of: Result<Vec<u16>, String> = placement
            .iter()
            .map(|h| index.get(h).copied().ok_or_else(|| format!("rank on unused host {h}")))
            .collect();
        let names = used.iter().map(|h| names[*h].clone()).collect();
        let collector = Collector::new(host_of?, names)?;
        Ok(Directory { index, collector })
    }

    /// The compact index of host `h`, for its [`JobSpec::directory`].
    pub(crate) fn index(&self, h: usize) -> Option<u16> {
        self.index.get(&h).copied()
    }

    /// Host `h`'s frame; `Ok(Some(frame))`: every host has reported, send `frame` to all.
    pub(crate) fn on_frame(&mut self, h: usize, frame: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let i = self.index.get(&h).copied().ok_or_else(|| format!("no host {h} in the job"))?;
        self.collector.on_frame(i as usize, frame)
    }
}

/// The agent's side: starts this host's gatherer for `spec` (host index `host`); returns it
/// and the variable that tells each rank where it is. Reports go to the launcher as
/// [`Event::Directory`] through `tx`.
pub(crate) fn start_gatherer(
    spec: &JobSpec,
    host: u16,
    tx: &mpsc::UnboundedSender<Event>,
) -> Result<(Gatherer, (String, String)), String> {
    let var = |k: &str| spec.env.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let token = var(rmpi_transport::env::TOKEN)
        .ok_or("the job has no token")
        .and_then(|t| JobToken::from_hex(&t).map_err(|_| "the job token is malformed"))?;
    let size = var(rmpi_transport::env::SIZE)
        .and_then(|s| s.parse::<usize>().ok())
        .ok_or("the job has no size")?;
    let boot = var(rmpi_transport::env::BOOT_TIMEOUT)
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(rmpi_transport::env::DEFAULT_BOOT_TIMEOUT, Duration::from_secs_f64);
    // Its ranks reach it over loopback; other hosts' ranks at the address its ranks advertise.
    let v6 = var(rmpi_transport::env::RENDEZVOUS)
        .and_then(|s| s.parse::<SocketAddr>().ok())
        .is_some_and(|a| a.is_ipv6());
    let (any, lo): (IpAddr, IpAddr) = if v6 {
        (Ipv6Addr::UNSPECIFIED.into(), Ipv6Addr::LOCALHOST.into())
    } else {
        (Ipv4Addr::UNSPECIFIED.into(), Ipv4Addr::LOCALHOST.into())
    };
    let cfg = GathererConfig {
        token,
        size,
        host,
        name: spec.host.clone(),
        ranks: spec.ranks.clone(),
        deadline: Instant::now() + boot,
    };
    let tx = tx.clone();
    let report = Box::new(move |frame: Vec<u8>| {
        let _ = tx.send(Event::Directory(frame));
    });
    let g = gatherer::start(SocketAddr::new(any, 0), cfg, report)
        .map_err(|e| format!("starting the directory: {e}"))?;
    let at = SocketAddr::new(lo, g.addr.port());
    Ok((g, (rmpi_transport::directory::DIRECTORY.to_string(), at.to_string())))
}
