//! Turning selected instances into hostfile lines.
//!
//! Formats:
//! - `rmpi` (what `rmpirun --hostfile` reads): `[user@]host slots=N [port=P]`, IPv6 addresses in
//!   brackets;
//! - `openmpi`: `host slots=N`;
//! - `mpich`: `host:N`.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::model::{CpuInfo, Instance};

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `[user@]host slots=N [port=P]` (rmpirun).
    Rmpi,
    /// `host slots=N` (Open MPI).
    Openmpi,
    /// `host:N` (MPICH / Hydra).
    Mpich,
}

impl Format {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rmpi => "rmpi",
            Self::Openmpi => "openmpi",
            Self::Mpich => "mpich",
        }
    }
}

/// Which address of an instance goes into the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AddressKind {
    /// Primary private IPv4 address.
    PrivateIp,
    /// Public IPv4 address.
    PublicIp,
    /// Private DNS name.
    PrivateDns,
    /// Public DNS name.
    PublicDns,
    /// Primary IPv6 address.
    Ipv6,
}

impl AddressKind {
    /// The address of `instance`, if it has one yet.
    pub fn of(self, instance: &Instance) -> Option<&str> {
        match self {
            Self::PrivateIp => instance.private_ip.as_deref(),
            Self::PublicIp => instance.public_ip.as_deref(),
            Self::PrivateDns => instance.private_dns.as_deref(),
            Self::PublicDns => instance.public_dns.as_deref(),
            Self::Ipv6 => instance.ipv6.as_deref(),
        }
    }

    /// Human name, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::PrivateIp => "private IP",
            Self::PublicIp => "public IP",
            Self::PrivateDns => "private DNS name",
            Self::PublicDns => "public DNS name",
            Self::Ipv6 => "IPv6 address",
        }
    }
}

/// How many slots each host gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slots {
    /// The instance type's default vCPU count.
    Vcpus,
    /// The instance type's default physical core count.
    Cores,
    /// The same number for every host.
    Fixed(u32),
}

impl std::str::FromStr for Slots {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text {
            "vcpus" => Ok(Self::Vcpus),
            "cores" => Ok(Self::Cores),
            n => match n.parse::<u32>() {
                Ok(0) => Err("a fixed slot count must be at least 1".into()),
                Ok(n) => Ok(Self::Fixed(n)),
                Err(_) => Err(format!("`{n}`: expected `vcpus`, `cores` or a number")),
            },
        }
    }
}

impl Slots {
    /// Whether instance types must be described to compute this.
    pub fn needs_instance_types(self) -> bool {
        !matches!(self, Self::Fixed(_))
    }
}

/// Everything that shapes the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Output format.
    pub format: Format,
    /// Which address to list.
    pub address: AddressKind,
    /// Slots per host.
    pub slots: Slots,
    /// SSH user written on each line (`rmpi` format only).
    pub user: Option<String>,
    /// SSH port written on each line (`rmpi` format only).
    pub port: Option<u16>,
}

impl Options {
    /// Checks option combinations that cannot be written.
    pub fn validate(&self) -> Result<()> {
        if self.format != Format::Rmpi && (self.user.is_some() || self.port.is_some()) {
            return Err(Error::Usage(format!(
                "the {} hostfile format has no place for an SSH user or port; use --format rmpi \
                 or set them in ~/.ssh/config",
                self.format.name()
            )));
        }
        if let Some(user) = &self.user {
            if user.is_empty() || user.contains(|c: char| c.is_whitespace() || c == '@' || c == '#')
            {
                return Err(Error::Usage(format!("invalid SSH user `{user}`")));
            }
        }
        if self.format == Format::Mpich && self.address == AddressKind::Ipv6 {
            return Err(Error::Usage(
                "the mpich host:N format cannot carry IPv6 addresses; use --format rmpi".into(),
            ));
        }
        Ok(())
    }
}

/// One line of the hostfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Address or name.
    pub host: String,
    /// Slot count.
    pub slots: u32,
    /// SSH user.
    pub user: Option<String>,
    /// SSH port.
    pub port: Option<u16>,
}

/// The entries for `instances` (already in order). `cpus` must describe every instance type
/// when `options.slots` needs it. Fails, naming the instances, if any lacks the address.
pub fn entries(
    instances: &[Instance],
    cpus: &BTreeMap<String, CpuInfo>,
    options: &Options,
) -> Result<Vec<Entry>> {
    let missing: Vec<&str> = instances
        .iter()
        .filter(|i| options.address.of(i).is_none())
        .map(|i| i.id.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(Error::MissingAddress {
            kind: options.address.describe().to_string(),
            instances: missing.join(", "),
        });
    }
    instances
        .iter()
        .map(|instance| {
            let slots = match options.slots {
                Slots::Fixed(n) => n,
                Slots::Vcpus | Slots::Cores => {
                    let info = cpus.get(&instance.instance_type).ok_or_else(|| {
                        Error::UnknownInstanceType(instance.instance_type.clone())
                    })?;
                    if options.slots == Slots::Vcpus {
                        info.vcpus
                    } else {
                        info.cores
                    }
                }
            };
            Ok(Entry {
                host: options.address.of(instance).unwrap_or_default().to_string(),
                slots: slots.max(1),
                user: options.user.clone(),
                port: options.port,
            })
        })
        .collect()
}

/// Writes `entries` in `format`, one line each, newline-terminated.
pub fn render(entries: &[Entry], format: Format) -> String {
    let mut out = String::new();
    for entry in entries {
        let host = if entry.host.contains(':') && format != Format::Openmpi {
            format!("[{}]", entry.host)
        } else {
            entry.host.clone()
        };
        let line = match format {
            Format::Rmpi => {
                let mut line = match &entry.user {
                    Some(user) => format!("{user}@{host} slots={}", entry.slots),
                    None => format!("{host} slots={}", entry.slots),
                };
                if let Some(port) = entry.port {
                    line.push_str(&format!(" port={port}"));
                }
                line
            }
            Format::Openmpi => format!("{host} slots={}", entry.slots),
            Format::Mpich => format!("{host}:{}", entry.slots),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, ty: &str, ip: Option<&str>, ipv6: Option<&str>) -> Instance {
        Instance {
            id: id.into(),
            instance_type: ty.into(),
            state: "running".into(),
            private_ip: ip.map(Into::into),
            public_ip: None,
            private_dns: ip.map(|ip| format!("ip-{}.ec2.internal", ip.replace('.', "-"))),
            public_dns: None,
            ipv6: ipv6.map(Into::into),
            launch_time: None,
            tags: vec![],
        }
    }

    fn cpus() -> BTreeMap<String, CpuInfo> {
        BTreeMap::from([
            ("c5.2xlarge".to_string(), CpuInfo { vcpus: 8, cores: 4 }),
            ("t2.micro".to_string(), CpuInfo { vcpus: 1, cores: 1 }),
        ])
    }

    fn options(format: Format, slots: Slots) -> Options {
        Options { format, address: AddressKind::PrivateIp, slots, user: None, port: None }
    }

    #[test]
    fn rmpi_format_with_user_port_and_ipv6() {
        let list = [
            instance("i-1", "c5.2xlarge", Some("10.0.0.1"), Some("2600::1")),
            instance("i-2", "t2.micro", Some("10.0.0.2"), Some("2600::2")),
        ];
        let mut opts = options(Format::Rmpi, Slots::Vcpus);
        let e = entries(&list, &cpus(), &opts).unwrap();
        assert_eq!(render(&e, Format::Rmpi), "10.0.0.1 slots=8\n10.0.0.2 slots=1\n");
        opts.user = Some("ec2-user".into());
        opts.port = Some(2222);
        opts.slots = Slots::Cores;
        opts.address = AddressKind::Ipv6;
        let e = entries(&list, &cpus(), &opts).unwrap();
        assert_eq!(
            render(&e, Format::Rmpi),
            "ec2-user@[2600::1] slots=4 port=2222\nec2-user@[2600::2] slots=1 port=2222\n"
        );
    }

    #[test]
    fn openmpi_and_mpich_formats() {
        let list = [instance("i-1", "c5.2xlarge", Some("10.0.0.1"), None)];
        let e =
            entries(&list, &BTreeMap::new(), &options(Format::Openmpi, Slots::Fixed(3))).unwrap();
        assert_eq!(render(&e, Format::Openmpi), "10.0.0.1 slots=3\n");
        assert_eq!(render(&e, Format::Mpich), "10.0.0.1:3\n");
        let mut opts = options(Format::Mpich, Slots::Vcpus);
        opts.address = AddressKind::PrivateDns;
        let e = entries(&list, &cpus(), &opts).unwrap();
        assert_eq!(render(&e, Format::Mpich), "ip-10-0-0-1.ec2.internal:8\n");
    }

    #[test]
    fn missing_addresses_and_types_are_named() {
        let list = [
            instance("i-1", "t2.micro", Some("10.0.0.1"), None),
            instance("i-2", "t2.micro", None, None),
            instance("i-3", "t2.micro", None, None),
        ];
        let err = entries(&list, &cpus(), &options(Format::Rmpi, Slots::Vcpus)).unwrap_err();
        assert!(err.to_string().starts_with("instances without a private IP: i-2, i-3 ("), "{err}");
        let list = [instance("i-1", "x9.huge", Some("10.0.0.1"), None)];
        let err = entries(&list, &cpus(), &options(Format::Rmpi, Slots::Cores)).unwrap_err();
        assert!(matches!(err, Error::UnknownInstanceType(t) if t == "x9.huge"));
    }

    #[test]
    fn invalid_combinations() {
        let mut opts = options(Format::Openmpi, Slots::Vcpus);
        opts.user = Some("u".into());
        assert!(opts.validate().unwrap_err().to_string().contains("openmpi hostfile format"));
        let mut opts = options(Format::Rmpi, Slots::Vcpus);
        opts.user = Some("a b".into());
        assert!(opts.validate().is_err());
        let mut opts = options(Format::Mpich, Slots::Vcpus);
        opts.address = AddressKind::Ipv6;
        assert!(opts.validate().is_err());
        assert!(options(Format::Rmpi, Slots::Vcpus).validate().is_ok());
    }

    #[test]
    fn slots_parse() {
        assert_eq!("vcpus".parse::<Slots>(), Ok(Slots::Vcpus));
        assert_eq!("cores".parse::<Slots>(), Ok(Slots::Cores));
        assert_eq!("16".parse::<Slots>(), Ok(Slots::Fixed(16)));
        assert!("0".parse::<Slots>().is_err());
        assert!("many".parse::<Slots>().is_err());
    }
}
