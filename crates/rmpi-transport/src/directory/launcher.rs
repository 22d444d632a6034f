//! The launcher's side: one report per host in, one placement frame out, the same for every host.
//! It never sees a rank's endpoint: what it holds and sends is O(hosts) per host.

use super::wire::{frame_len, HostInfo, Msg, Placement, MAX_FRAME};

/// Collects the hosts' reports.
#[derive(Debug)]
pub struct Collector {
    host_of: Vec<u16>,
    /// Ranks per host.
    expected: Vec<u32>,
    /// Host names, for messages.
    names: Vec<String>,
    hosts: Vec<Option<HostInfo>>,
    got: usize,
}

impl Collector {
    /// A collector for a job whose rank `r` runs on host `host_of[r]` (of `names.len()` hosts,
    /// each with at least one rank).
    pub fn new(host_of: Vec<u16>, names: Vec<String>) -> Result<Collector, String> {
        let mut expected = vec![0u32; names.len()];
        for &h in &host_of {
            match expected.get_mut(h as usize) {
                Some(n) => *n += 1,
                None => return Err(format!("rank placed on host {h} of {}", names.len())),
            }
        }
        if let Some(h) = expected.iter().position(|n| *n == 0) {
            return Err(format!("host {} has no ranks", names[h]));
        }
        let hosts = vec![None; names.len()];
        Ok(Collector { host_of, expected, names, hosts, got: 0 })
    }

    /// Takes host `from`'s frame. `Ok(Some(frame))` once every host has reported: the
    /// [`Msg::Placement`] frame to send every host. An error names the host and what it said.
    pub fn on_frame(&mut self, from: usize, frame: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let name = self.names.get(from).cloned().unwrap_or_else(|| format!("host {from}"));
        let msg = match frame_len(frame, MAX_FRAME) {
            Ok(Some(n)) if n == frame.len() => Msg::decode(&frame[4..]).map_err(|e| e.to_string()),
            Ok(_) => Err(format!("a frame of {} bytes that is not one whole frame", frame.len())),
            Err(e) => Err(e.to_string()),
        };
        let report = match msg {
            Ok(Msg::Report(r)) => r,
            Ok(Msg::Failed(why)) => return Err(format!("{name}: {why}")),
            Ok(other) => return Err(format!("{name}: unexpected directory frame {other:?}")),
            Err(e) => return Err(format!("{name}: malformed directory frame: {e}")),
        };
        if report.host as usize != from {
            return Err(format!("{name}: reported as host {}", report.host));
        }
        let want = self.expected[from];
        if report.ranks != want {
            return Err(format!("{name}: {} ranks registered, {want} expected", report.ranks));
        }
        if self.hosts[from].is_some() {
            return Err(format!("{name}: reported twice"));
        }
        self.hosts[from] = Some(report.info);
        self.got += 1;
        if self.got < self.hosts.len() {
            return Ok(None);
        }
        let hosts = self.hosts.iter().flatten().cloned().collect();
        let placement = Placement { runs: Placement::runs_of(&self.host_of), hosts };
        Ok(Some(Msg::Placement(placement).encode()))
    }

    /// The hosts that have not reported.
    pub fn waiting(&self) -> Vec<&str> {
        (0..self.hosts.len())
            .filter(|h| self.hosts[*h].is_none())
            .map(|h| self.names[h].as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::Report;
    use super::*;

    fn report(host: u16, ranks: u32) -> Vec<u8> {
        let info = HostInfo { label: format!("h{host}"), directory: ([10, 0, 0, 1], 9).into() };
        Msg::Report(Report { host, ranks, info }).encode()
    }

    #[test]
    fn placement_after_every_host_and_errors_name_the_host() {
        let names = vec!["a".to_string(), "b".to_string()];
        let mut c = Collector::new(vec![0, 0, 1, 0], names.clone()).unwrap();
        assert_eq!(c.on_frame(1, &report(1, 1)).unwrap(), None);
        assert_eq!(c.waiting(), vec!["a"]);
        let e = c.on_frame(0, &report(0, 2)).unwrap_err();
        assert!(e.contains("a:") && e.contains("3 expected"), "{e}");
        let go = c.on_frame(0, &report(0, 3)).unwrap().unwrap();
        match Msg::decode(&go[4..]).unwrap() {
            Msg::Placement(p) => {
                assert_eq!(p.runs, vec![(0, 2), (1, 1), (0, 1)]);
                assert_eq!(p.hosts[1].label, "h1");
            }
            other => panic!("{other:?}"),
        }
        let mut c = Collector::new(vec![0, 1], names).unwrap();
        let e = c.on_frame(1, &Msg::Failed("rank 1 never registered".into()).encode());
        assert!(e.unwrap_err().starts_with("b: rank 1"));
        assert!(c.on_frame(0, &[1, 0, 0, 0, 77]).unwrap_err().contains("malformed"));
        assert!(c.on_frame(0, &report(1, 1)).unwrap_err().contains("reported as host 1"));
        assert!(Collector::new(vec![0, 0], vec!["a".into(), "b".into()]).is_err());
    }
}
