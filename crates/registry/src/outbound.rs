//! The outbound policy ([`regkeep_domain::outbound`]) applied where connections are opened.
//!
//! Every HTTP client this crate builds serves one registry and carries a [`Guard`] for it:
//! - host names are resolved by [`GuardedResolver`], reqwest's DNS resolver, which drops every
//!   address the policy refuses *before* the socket is opened: the addresses checked are the
//!   addresses connected to, so a name that answers differently twice (DNS rebinding) cannot
//!   pass a check with one answer and connect with the other;
//! - URLs that name an IP address (reqwest connects to those without asking the resolver, in any
//!   spelling the URL parser accepts: `2130706433`, `0x7f.1`, `[::ffff:7f00:1]`) are checked by
//!   [`GuardedClient::request`], the only way this crate builds a request.
//!
//! The registry's own host is judged by the policy alone; any other host (a token realm, a
//! redirect hop) also may not be internal unless the registry itself is on an internal address.
//! Proxies from the environment are not used: the policy must see the address it connects to.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use regkeep_domain::outbound::{AddressClass, OutboundPolicy, Refusal};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::RegistryError;

/// A connection refused by the outbound policy. Carried as the source of reqwest's connect
/// error, so [`crate::classify`] finds it by type.
#[derive(Clone, Debug, thiserror::Error)]
#[error("regkeep does not connect to {host} ({address}): {refusal}")]
pub struct AddressRefused {
    pub host: String,
    pub address: IpAddr,
    pub refusal: Refusal,
}

/// The policy for the connections of one registry's client.
#[derive(Debug)]
pub(crate) struct Guard {
    policy: Arc<OutboundPolicy>,
    /// The registry's host (lower case, IPv6 without brackets): judged by the policy alone.
    registry_host: String,
    /// Whether the registry was found on an allowed internal address (private, or loopback where
    /// allowed): then its realm and redirects may be internal too.
    registry_internal: AtomicBool,
}

impl Guard {
    pub(crate) fn new(policy: Arc<OutboundPolicy>, registry_authority: &str) -> Self {
        Guard {
            policy,
            registry_host: host_of(registry_authority),
            registry_internal: AtomicBool::new(false),
        }
    }

    /// Judges one address of `host`.
    fn check(&self, host: &str, address: IpAddr) -> Result<AddressClass, AddressRefused> {
        let own_host = host.eq_ignore_ascii_case(&self.registry_host);
        let verdict = if own_host {
            self.policy.check(address)
        } else {
            self.policy
                .check_hop(address, self.registry_internal.load(Ordering::Acquire))
        };
        let verdict = verdict.and_then(|class| {
            if self.policy.listens_everywhere() && is_own_address(address) {
                Err(Refusal::OwnAddress)
            } else {
                Ok(class)
            }
        });
        match verdict {
            Ok(class) => {
                if own_host && class.is_internal() {
                    self.registry_internal.store(true, Ordering::Release);
                }
                Ok(class)
            }
            Err(refusal) => Err(AddressRefused {
                host: host.to_owned(),
                address,
                refusal,
            }),
        }
    }
}

/// Whether `address` is one of this host's own (the kernel lets a socket bind only to those).
fn is_own_address(address: IpAddr) -> bool {
    UdpSocket::bind(SocketAddr::new(address, 0)).is_ok()
}

/// `host` of `host[:port]` / `[v6]:port`, lower case, without brackets.
fn host_of(authority: &str) -> String {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.to_ascii_lowercase()
}

/// reqwest's resolver for one registry's client: the system resolver (getaddrinfo, as reqwest's
/// default), then the policy on every address.
#[derive(Debug)]
pub(crate) struct GuardedResolver(pub(crate) Arc<Guard>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match guard.check(&host, a.ip()) {
                    Ok(_) => true,
                    Err(e) => {
                        refused.get_or_insert(e);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(refusal)) => Err(Box::new(refusal) as Box<_>),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// A registry's HTTP client with its guard. Requests are built only through
/// [`GuardedClient::request`], which checks URLs that name an address.
#[derive(Clone, Debug)]
pub(crate) struct GuardedClient {
    http: reqwest::Client,
    guard: Arc<Guard>,
}

impl GuardedClient {
    pub(crate) fn new(http: reqwest::Client, guard: Arc<Guard>) -> Self {
        GuardedClient { http, guard }
    }

    /// A request to `url`, when its scheme is http(s) and, if it names an IP address, the policy
    /// allows that address (names are checked when they are resolved).
    ///
    /// # Errors
    /// [`RegistryError::AddressRefused`]; `Protocol` for another scheme or no host.
    pub(crate) fn request(
        &self,
        method: reqwest::Method,
        url: &reqwest::Url,
    ) -> Result<reqwest::RequestBuilder, RegistryError> {
        self.check_url(url)?;
        Ok(self.http.request(method, url.clone()))
    }

    /// Whether `url` may be requested: http(s), with a host, and an address the policy allows
    /// when it names one (a name's addresses are judged when it is resolved).
    ///
    /// # Errors
    /// [`RegistryError::AddressRefused`]; `Protocol` for another scheme or no host.
    pub(crate) fn check_url(&self, url: &reqwest::Url) -> Result<(), RegistryError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(RegistryError::Protocol {
                url: crate::shown_url(url),
                detail: "only http and https URLs are followed".into(),
            });
        }
        let address = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            Some(url::Host::Domain(_)) => None,
            None => {
                return Err(RegistryError::Protocol {
                    url: crate::shown_url(url),
                    detail: "the URL has no host".into(),
                })
            }
        };
        if let Some(address) = address {
            let host = host_of(&url[url::Position::BeforeHost..url::Position::AfterPort]);
            self.guard
                .check(&host, address)
                .map_err(RegistryError::from)?;
        }
        Ok(())
    }

    /// A GET of `url` (see [`GuardedClient::request`]).
    ///
    /// # Errors
    /// As [`GuardedClient::request`].
    pub(crate) fn get(&self, url: &reqwest::Url) -> Result<reqwest::RequestBuilder, RegistryError> {
        self.request(reqwest::Method::GET, url)
    }
}

impl From<AddressRefused> for RegistryError {
    fn from(refused: AddressRefused) -> Self {
        RegistryError::AddressRefused(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_authorities() {
        assert_eq!(host_of("Reg.Example.com:5000"), "reg.example.com");
        assert_eq!(host_of("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_of("[::1]:443"), "::1");
        assert_eq!(host_of("[fd00::1]"), "fd00::1");
    }

    #[test]
    fn literal_addresses_in_any_spelling_are_checked() {
        let policy = Arc::new(OutboundPolicy::default());
        let client = GuardedClient::new(
            reqwest::Client::new(),
            Arc::new(Guard::new(policy, "evil.test")),
        );
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://0xa9fea9fe/",
            "http://10.77.0.1/",
        ] {
            let parsed = reqwest::Url::parse(url).unwrap();
            assert!(
                matches!(client.get(&parsed), Err(RegistryError::AddressRefused(_))),
                "{url}"
            );
        }
        assert!(client
            .get(&reqwest::Url::parse("http://198.51.100.7/v2/").unwrap())
            .is_ok());
        assert!(matches!(
            client.get(&reqwest::Url::parse("file:///etc/passwd").unwrap()),
            Err(RegistryError::Protocol { .. })
        ));
    }

    #[test]
    fn internal_registry_may_name_internal_hops() {
        let policy = Arc::new(OutboundPolicy::default());
        let guard = Guard::new(policy, "10.0.0.5:5000");
        // before the registry was seen on its internal address, another internal host is refused
        assert!(guard
            .check("10.0.0.6", "10.0.0.6".parse().unwrap())
            .is_err());
        assert!(guard.check("10.0.0.5", "10.0.0.5".parse().unwrap()).is_ok());
        assert!(guard.check("10.0.0.6", "10.0.0.6".parse().unwrap()).is_ok());
        // never the always-refused ones
        assert!(guard
            .check("meta", "169.254.169.254".parse().unwrap())
            .is_err());
    }
}
