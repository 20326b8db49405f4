//! The outbound policy (docs/design.md §3.7): which addresses regkeep may connect to when a user chose the
//! address (a registry, its token realm, a redirect). Pure rules; the registry client applies
//! them where sockets are opened (its DNS resolver and its request builder), so a name that
//! resolves differently twice cannot slip between a check and a connect.
//!
//! Order of the rules, first match wins:
//! 1. IPv6 forms that carry an IPv4 address (`::ffff:a.b.c.d`, `::a.b.c.d`, NAT64 `64:ff9b::/96`,
//!    6to4 `2002::/16`) are judged as that IPv4 address.
//! 2. Always refused, whatever the configuration: unspecified and "this network" (0.0.0.0/8, ::),
//!    link-local (169.254/16, fe80::/10), cloud metadata (169.254.169.254, fd00:ec2::254,
//!    100.100.100.200), multicast, broadcast and the reserved 240/4.
//! 3. `allowed_networks`: allowed (over the rules below, never over rule 2).
//! 4. `denied_networks`: refused.
//! 5. Loopback, and regkeep's own listen address: refused unless `allow_loopback`.
//! 6. Private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, 198.18/15, fc00::/7): allowed,
//!    but a registry on a public address may not send regkeep to them (a realm or redirect hop to
//!    another host, [`OutboundPolicy::check_hop`]).
//! 7. Everything else: public, allowed.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`); a bare address is a /32 or /128.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNetwork {
    address: IpAddr,
    prefix: u8,
}

/// A CIDR string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP network: write it in CIDR notation, e.g. 10.0.0.0/8 or fd00::/8")]
pub struct IpNetworkError(String);

impl FromStr for IpNetwork {
    type Err = IpNetworkError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IpNetworkError(s.to_owned());
        let (address, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let address: IpAddr = address.parse().map_err(|_| bad())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(IpNetwork { address, prefix })
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl IpNetwork {
    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Self {
        IpNetwork {
            address: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix,
        }
    }

    const fn v6(segments: [u16; 8], prefix: u8) -> Self {
        let [a, b, c, d, e, f, g, h] = segments;
        IpNetwork {
            address: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
            prefix,
        }
    }

    /// Whether `ip` is in this network (an IPv4 network never holds an IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl serde::Serialize for IpNetwork {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for IpNetwork {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Always refused, with what each is (for messages).
const ALWAYS_REFUSED: [(IpNetwork, &str); 15] = [
    (
        IpNetwork::v4(169, 254, 169, 254, 32),
        "a cloud metadata address",
    ),
    // Azure's WireServer (instance certificates, extension settings).
    (
        IpNetwork::v4(168, 63, 129, 16, 32),
        "a cloud metadata address",
    ),
    // The EKS Pod Identity agent (hands out the pod's AWS credentials).
    (
        IpNetwork::v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23], 128),
        "a cloud metadata address",
    ),
    (
        IpNetwork::v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32),
        "a Teredo tunnel address",
    ),
    (
        IpNetwork::v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48),
        "a local-use NAT64 address",
    ),
    (
        IpNetwork::v4(100, 100, 100, 200, 32),
        "a cloud metadata address",
    ),
    (
        IpNetwork::v6([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254], 128),
        "a cloud metadata address",
    ),
    (
        IpNetwork::v4(0, 0, 0, 0, 8),
        "an unspecified (\"this network\") address",
    ),
    (IpNetwork::v6([0; 8], 128), "the unspecified address"),
    (IpNetwork::v4(169, 254, 0, 0, 16), "a link-local address"),
    (
        IpNetwork::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
        "a link-local address",
    ),
    (IpNetwork::v4(224, 0, 0, 0, 4), "a multicast address"),
    (
        IpNetwork::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
        "a multicast address",
    ),
    (
        IpNetwork::v4(240, 0, 0, 0, 4),
        "a reserved or broadcast address",
    ),
    (
        IpNetwork::v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        "a deprecated site-local address",
    ),
];

/// Private ranges: allowed by default (real registries live there).
const PRIVATE: [IpNetwork; 6] = [
    IpNetwork::v4(10, 0, 0, 0, 8),
    IpNetwork::v4(172, 16, 0, 0, 12),
    IpNetwork::v4(192, 168, 0, 0, 16),
    IpNetwork::v4(100, 64, 0, 0, 10),
    IpNetwork::v4(198, 18, 0, 0, 15),
    IpNetwork::v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
];

/// What kind of address an allowed one is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressClass {
    /// On the public internet (or listed in `allowed_networks`).
    Public,
    /// In a private range.
    Private,
    /// Loopback or regkeep's own address (only with `allow_loopback`).
    Loopback,
}

impl AddressClass {
    /// Private or loopback: inside the network regkeep runs in.
    pub fn is_internal(self) -> bool {
        !matches!(self, AddressClass::Public)
    }
}

/// Why an address is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Rule 2: never, whatever the configuration (the text says what the address is).
    Always(&'static str),
    /// Listed in `outbound.denied_networks`.
    Denied,
    /// Loopback, with `outbound.allow_loopback` off.
    Loopback,
    /// regkeep's own listen address, with `outbound.allow_loopback` off.
    OwnAddress,
    /// A private address named by a registry on a public address (a token realm or redirect).
    InternalFromPublicRegistry,
}

impl Refusal {
    /// The setting that would allow the address, where one exists.
    pub fn setting(self) -> Option<&'static str> {
        match self {
            Refusal::Always(_) => None,
            Refusal::Denied => Some("outbound.denied_networks"),
            Refusal::Loopback | Refusal::OwnAddress => Some("outbound.allow_loopback"),
            Refusal::InternalFromPublicRegistry => Some("outbound.allowed_networks"),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Always(what) => write!(f, "it is {what}, which regkeep never connects to"),
            Refusal::Denied => f.write_str(
                "it is in outbound.denied_networks; remove it from there (or list it in outbound.allowed_networks) to allow it",
            ),
            Refusal::Loopback => f.write_str(
                "it is a loopback address; set outbound.allow_loopback: true to allow registries on this machine",
            ),
            Refusal::OwnAddress => f.write_str(
                "it is regkeep's own address; set outbound.allow_loopback: true to allow registries on this machine",
            ),
            Refusal::InternalFromPublicRegistry => f.write_str(
                "it is an internal address named by a registry on a public address; list the network in outbound.allowed_networks if that is intended",
            ),
        }
    }
}

/// Where regkeep itself listens, so that it never connects to itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OwnAddress {
    /// Not known (tests of the policy alone).
    #[default]
    Unknown,
    /// A specific address.
    Specific(IpAddr),
    /// Every address of the host (`0.0.0.0`, `::`): whether an address is the host's own is
    /// for the caller to find out ([`OutboundPolicy::listens_everywhere`]).
    Everywhere,
}

/// The policy: settings of the `outbound` section, and where regkeep listens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    pub allow_loopback: bool,
    pub denied_networks: Vec<IpNetwork>,
    pub allowed_networks: Vec<IpNetwork>,
    pub own_address: OwnAddress,
}

impl OutboundPolicy {
    /// The policy with loopback allowed (the test suite's peers on 127.0.0.x).
    pub fn allowing_loopback() -> Self {
        OutboundPolicy {
            allow_loopback: true,
            ..OutboundPolicy::default()
        }
    }

    /// Whether regkeep listens on every address of the host: then the caller also refuses
    /// (unless `allow_loopback`) addresses it finds to be the host's own.
    pub fn listens_everywhere(&self) -> bool {
        !self.allow_loopback && self.own_address == OwnAddress::Everywhere
    }

    /// Judges a connection to `ip` for the registry itself (rules 1-7).
    ///
    /// # Errors
    /// The [`Refusal`] when the address is refused.
    pub fn check(&self, ip: IpAddr) -> Result<AddressClass, Refusal> {
        let ip = embedded_ipv4(ip).map_or(ip, IpAddr::V4);
        if let Some((_, what)) = ALWAYS_REFUSED.iter().find(|(net, _)| net.contains(ip)) {
            return Err(Refusal::Always(what));
        }
        let private = PRIVATE.iter().any(|net| net.contains(ip));
        if self.allowed_networks.iter().any(|net| net.contains(ip)) {
            return Ok(AddressClass::Public);
        }
        if self.denied_networks.iter().any(|net| net.contains(ip)) {
            return Err(Refusal::Denied);
        }
        if ip.is_loopback() {
            return if self.allow_loopback {
                Ok(AddressClass::Loopback)
            } else {
                Err(Refusal::Loopback)
            };
        }
        if let OwnAddress::Specific(own) = self.own_address {
            if own == ip {
                return if self.allow_loopback {
                    Ok(AddressClass::Loopback)
                } else {
                    Err(Refusal::OwnAddress)
                };
            }
        }
        Ok(if private {
            AddressClass::Private
        } else {
            AddressClass::Public
        })
    }

    /// Judges a connection to `ip` on another host than the registry's (its token realm, a
    /// redirect): as [`OutboundPolicy::check`], and an internal address only when the registry is
    /// on an internal address itself: a public registry never sends regkeep into its network.
    ///
    /// # Errors
    /// The [`Refusal`] when the address is refused.
    pub fn check_hop(&self, ip: IpAddr, registry_internal: bool) -> Result<AddressClass, Refusal> {
        let class = self.check(ip)?;
        if class.is_internal() && !registry_internal {
            return Err(Refusal::InternalFromPublicRegistry);
        }
        Ok(class)
    }
}

/// The IPv4 address an IPv6 address stands for: mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`
/// (deprecated; `::` and `::1` excluded), NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::/48`.
fn embedded_ipv4(ip: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = ip else {
        return None;
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..6] == [0; 6] && u32::from(low) > 1 {
        return Some(low);
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(low);
    }
    // IPv4-translated (SIIT): ::ffff:0:a.b.c.d
    if s[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return Some(low);
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn always_refused_whatever_the_settings() {
        let lenient = OutboundPolicy {
            allow_loopback: true,
            allowed_networks: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
            ..OutboundPolicy::default()
        };
        for addr in [
            "169.254.169.254",
            "169.254.0.1",
            "100.100.100.200",
            "fd00:ec2::254",
            "0.0.0.0",
            "0.1.2.3",
            "::",
            "fe80::1",
            "224.0.0.1",
            "239.255.255.250",
            "ff02::1",
            "255.255.255.255",
            "240.0.0.1",
            // IPv6 spellings of refused IPv4 addresses
            "::ffff:169.254.169.254",
            "::ffff:a9fe:a9fe",
            "::169.254.169.254",
            "64:ff9b::169.254.169.254",
            "2002:a9fe:a9fe::1",
            "::ffff:0.0.0.0",
            "::ffff:0:a9fe:a9fe",
            "64:ff9b:1::a9fe:a9fe",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "168.63.129.16",
            "fd00:ec2::23",
        ] {
            assert!(
                matches!(lenient.check(ip(addr)), Err(Refusal::Always(_))),
                "{addr}: {:?}",
                lenient.check(ip(addr))
            );
            assert!(lenient.check_hop(ip(addr), true).is_err(), "{addr}");
        }
    }

    #[test]
    fn defaults() {
        let p = OutboundPolicy::default();
        for addr in [
            "127.0.0.1",
            "127.0.0.9",
            "::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::",
        ] {
            assert_eq!(p.check(ip(addr)), Err(Refusal::Loopback), "{addr}");
        }
        for addr in [
            "10.77.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "198.18.0.1",
            "198.19.255.255",
            "fd12::1",
            "::ffff:10.0.0.1",
        ] {
            assert_eq!(p.check(ip(addr)), Ok(AddressClass::Private), "{addr}");
            assert_eq!(
                p.check_hop(ip(addr), false),
                Err(Refusal::InternalFromPublicRegistry),
                "{addr}"
            );
            assert_eq!(p.check_hop(ip(addr), true), Ok(AddressClass::Private));
        }
        for addr in [
            "198.51.100.7",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2600:1f18::1",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(p.check(ip(addr)), Ok(AddressClass::Public), "{addr}");
            assert_eq!(p.check_hop(ip(addr), false), Ok(AddressClass::Public));
        }
    }

    #[test]
    fn settings() {
        let p = OutboundPolicy {
            allow_loopback: true,
            denied_networks: vec!["10.0.0.0/8".parse().unwrap(), "127.0.0.5".parse().unwrap()],
            allowed_networks: vec!["10.1.0.0/16".parse().unwrap()],
            own_address: OwnAddress::Unknown,
        };
        assert_eq!(p.check(ip("127.0.0.1")), Ok(AddressClass::Loopback));
        assert_eq!(p.check(ip("127.0.0.5")), Err(Refusal::Denied));
        assert_eq!(p.check(ip("10.77.0.1")), Err(Refusal::Denied));
        assert_eq!(p.check(ip("::ffff:10.77.0.1")), Err(Refusal::Denied));
        // allowed wins over denied and over the hop rule
        assert_eq!(p.check(ip("10.1.2.3")), Ok(AddressClass::Public));
        assert_eq!(p.check_hop(ip("10.1.2.3"), false), Ok(AddressClass::Public));
        // a loopback registry's hops may be on loopback
        assert_eq!(
            p.check_hop(ip("127.0.0.3"), true),
            Ok(AddressClass::Loopback)
        );
        assert_eq!(
            p.check_hop(ip("127.0.0.3"), false),
            Err(Refusal::InternalFromPublicRegistry)
        );
        assert_eq!(Refusal::Denied.setting(), Some("outbound.denied_networks"));
    }

    #[test]
    fn own_address() {
        let own = ip("10.0.0.5");
        let p = OutboundPolicy {
            own_address: OwnAddress::Specific(own),
            ..OutboundPolicy::default()
        };
        assert_eq!(p.check(own), Err(Refusal::OwnAddress));
        assert_eq!(p.check(ip("10.0.0.6")), Ok(AddressClass::Private));
        let p = OutboundPolicy {
            allow_loopback: true,
            ..p
        };
        assert_eq!(p.check(own), Ok(AddressClass::Loopback));
        let everywhere = OutboundPolicy {
            own_address: OwnAddress::Everywhere,
            ..OutboundPolicy::default()
        };
        assert!(everywhere.listens_everywhere());
        assert!(!OutboundPolicy::allowing_loopback().listens_everywhere());
    }

    #[test]
    fn networks_parse() {
        assert_eq!(
            "10.0.0.0/8".parse::<IpNetwork>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert!("10.2.3.4/8"
            .parse::<IpNetwork>()
            .unwrap()
            .contains(ip("10.9.9.9")));
        assert!("::/0".parse::<IpNetwork>().unwrap().contains(ip("2600::1")));
        assert!(!"::/0".parse::<IpNetwork>().unwrap().contains(ip("1.2.3.4")));
        assert!("0.0.0.0/0"
            .parse::<IpNetwork>()
            .unwrap()
            .contains(ip("1.2.3.4")));
        for bad in ["10.0.0.0/33", "fd00::/129", "example.com/8", "10.0.0/8", ""] {
            let err = bad.parse::<IpNetwork>().unwrap_err().to_string();
            assert!(err.contains("CIDR"), "{bad}: {err}");
        }
    }
}
