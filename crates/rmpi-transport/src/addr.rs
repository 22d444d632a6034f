//! Choosing the address a rank advertises to its peers.
//!
//! The default is the local address of the rank's own connection to the rendezvous server: the
//! kernel picked it as the source of the route towards the launcher, so it is on a network the
//! peers share. `gethostname()` is not consulted: on many systems it resolves to 127.0.0.1.

use std::net::IpAddr;

/// How to pick the advertised address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddrSelector {
    /// The local address of the route to the rendezvous server (default).
    RouteToRendezvous,
    /// The first address of the named interface (IPv4 preferred).
    Interface(String),
    /// The first local address inside this network.
    Cidr(IpAddr, u8),
}

impl AddrSelector {
    /// Parses `RMPI_IFACE`: a CIDR (`10.1.0.0/16`, `fd00::/8`) or an interface name (`eth1`).
    ///
    /// ```
    /// use rmpi::addr::AddrSelector;
    /// assert!(matches!(AddrSelector::parse("10.1.0.0/16"), Ok(AddrSelector::Cidr(_, 16))));
    /// assert_eq!(AddrSelector::parse("eth1"), Ok(AddrSelector::Interface("eth1".into())));
    /// assert!(AddrSelector::parse("10.1.0.0/40").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some((ip, bits)) = s.split_once('/') {
            let ip: IpAddr = ip.parse().map_err(|e| format!("{s:?}: bad network address: {e}"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits: u8 = bits
                .parse()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?;
            return Ok(AddrSelector::Cidr(ip, bits));
        }
        if s.is_empty() || s.len() > 15 || s.contains(char::is_whitespace) {
            return Err(format!("{s:?} is neither an interface name nor a CIDR"));
        }
        Ok(AddrSelector::Interface(s.to_owned()))
    }

    /// Resolves the selector, given the local address of the route to the rendezvous.
    pub fn resolve(&self, route_local: IpAddr) -> Result<IpAddr, String> {
        let ifaces = || if_addrs::get_if_addrs().map_err(|e| format!("listing interfaces: {e}"));
        match self {
            AddrSelector::RouteToRendezvous => Ok(route_local),
            AddrSelector::Interface(name) => {
                let all = ifaces()?;
                let mine: Vec<IpAddr> =
                    all.iter().filter(|i| &i.name == name).map(|i| i.ip()).collect();
                mine.iter().find(|ip| ip.is_ipv4()).or_else(|| mine.first()).copied().ok_or_else(
                    || {
                        let names: Vec<&str> = all.iter().map(|i| i.name.as_str()).collect();
                        format!(
                            "no interface {name:?} with an address (have: {})",
                            names.join(", ")
                        )
                    },
                )
            }
            AddrSelector::Cidr(net, bits) => ifaces()?
                .iter()
                .map(|i| i.ip())
                .find(|ip| in_network(*ip, *net, *bits))
                .ok_or_else(|| format!("no local address in {net}/{bits}")),
        }
    }
}

/// Whether `ip` lies in `net/bits`.
pub fn in_network(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - u32::from(bits.min(32))) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - u32::from(bits.min(128))) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_network(ip("10.1.2.3"), ip("10.1.0.0"), 16));
        assert!(!in_network(ip("10.2.2.3"), ip("10.1.0.0"), 16));
        assert!(in_network(ip("10.2.2.3"), ip("0.0.0.0"), 0));
        assert!(in_network(ip("fd00::5"), ip("fd00::"), 8));
        assert!(!in_network(ip("fd00::5"), ip("10.0.0.0"), 8));
    }

    #[test]
    fn loopback_is_found_by_name_and_cidr() {
        let lo = AddrSelector::Interface("lo".into()).resolve(ip4()).unwrap();
        assert!(lo.is_loopback());
        let c = AddrSelector::parse("127.0.0.0/8").unwrap().resolve(ip4()).unwrap();
        assert!(c.is_loopback());
        let e = AddrSelector::Interface("nosuch0".into()).resolve(ip4()).unwrap_err();
        assert!(e.contains("nosuch0") && e.contains("lo"), "{e}");
    }

    fn ip4() -> IpAddr {
        IpAddr::from([192, 0, 2, 1])
    }
}
