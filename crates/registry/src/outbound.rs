//! The outbound policy ([`regkeep_domain::outbound`]) applied where connections are opened.
//!
//! Every HTTP client this crate builds serves one registry and carries a [`Guard`]:
//! - host names are resolved by [`GuardedResolver`], reqwest's DNS resolver, which drops every
//!   address the policy refuses *before* the socket is opened: the addresses checked are the
//!   addresses connected to, so a name that answers differently twice (DNS rebinding) cannot
//!   pass a check with one answer and connect with the other;
//! - URLs that name an IP address (reqwest connects to those without asking the resolver, in any
//!   spelling the URL parser accepts: `2130706433`, `0x7f.1`, `[::ffff:7f00:1]`) are checked by
//!   [`GuardedClient::request`], the only way this crate builds a request to the registry;
//! - a hop off the registry's origin (its token realm, a redirect to another host or port) is
//!   judged by the hop rule as well: an internal address only when the answer that named the hop
//!   came from an internal address itself ([`Guard::answered_from_internal`]). The hop's name is resolved here,
//!   its addresses judged, and the request sent by a client pinned to exactly those addresses
//!   ([`GuardedClient::hop_request`]); nothing is remembered between requests, so a registry
//!   cannot get itself taken for internal once and then steer regkeep inside later.
//!
//! Proxies from the environment are not used: the policy must see the address it connects to.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;

use regkeep_domain::outbound::{AddressClass, OutboundPolicy, Refusal};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::tls::TlsSettings;
use crate::{shown_url, RegistryError, Timeouts};

/// A connection refused by the outbound policy. Carried as the source of reqwest's connect
/// error, so [`crate::classify`] finds it by type.
#[derive(Clone, Debug, thiserror::Error)]
#[error("regkeep does not connect to {host} ({address}): {refusal}")]
pub struct AddressRefused {
    pub host: String,
    pub address: IpAddr,
    pub refusal: Refusal,
}

/// The policy, with the one check it needs from the operating system.
#[derive(Debug)]
pub(crate) struct Guard {
    policy: Arc<OutboundPolicy>,
}

impl Guard {
    pub(crate) fn new(policy: Arc<OutboundPolicy>) -> Self {
        Guard { policy }
    }

    /// Judges an address of the registry itself.
    fn check(&self, host: &str, address: IpAddr) -> Result<AddressClass, AddressRefused> {
        self.judged(host, address, self.policy.check(address))
    }

    /// Judges an address of a hop named by an answer from an internal (or public) address.
    fn check_hop(
        &self,
        host: &str,
        address: IpAddr,
        from_internal: bool,
    ) -> Result<AddressClass, AddressRefused> {
        self.judged(host, address, self.policy.check_hop(address, from_internal))
    }

    fn judged(
        &self,
        host: &str,
        address: IpAddr,
        verdict: Result<AddressClass, Refusal>,
    ) -> Result<AddressClass, AddressRefused> {
        let verdict = verdict.and_then(|class| {
            if self.policy.listens_everywhere() && is_own_address(address) {
                Err(Refusal::OwnAddress)
            } else {
                Ok(class)
            }
        });
        verdict.map_err(|refusal| AddressRefused {
            host: host.to_owned(),
            address,
            refusal,
        })
    }

    /// Whether an answer that came from `remote` may name internal hops.
    pub(crate) fn answered_from_internal(&self, remote: Option<SocketAddr>) -> bool {
        remote.is_some_and(|a| {
            self.policy
                .check(a.ip())
                .is_ok_and(AddressClass::is_internal)
        })
    }
}

/// Whether `address` is one of this host's own (the kernel lets a socket bind only to those).
fn is_own_address(address: IpAddr) -> bool {
    UdpSocket::bind(SocketAddr::new(address, 0)).is_ok()
}

/// The host of a URL as messages name it (IPv6 without brackets).
fn host_text(url: &reqwest::Url) -> String {
    url.host_str()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
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
            let (allowed, refused) = filter(found, |ip| guard.check(&host, ip));
            match (allowed.is_empty(), refused) {
                (true, Some(refusal)) => Err(Box::new(refusal) as Box<_>),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

/// The addresses `judge` allows, and the first refusal.
fn filter(
    found: Vec<SocketAddr>,
    judge: impl Fn(IpAddr) -> Result<AddressClass, AddressRefused>,
) -> (Vec<SocketAddr>, Option<AddressRefused>) {
    let mut refused = None;
    let allowed = found
        .into_iter()
        .filter(|a| match judge(a.ip()) {
            Ok(_) => true,
            Err(e) => {
                refused.get_or_insert(e);
                false
            }
        })
        .collect();
    (allowed, refused)
}

/// How a client for hops is made: the registry's TLS settings and timeouts.
#[derive(Clone)]
pub(crate) struct HopClients {
    pub(crate) tls: Arc<TlsSettings>,
    pub(crate) authority: String,
    pub(crate) verify_tls: bool,
    pub(crate) timeouts: Timeouts,
}

impl HopClients {
    /// A client that connects `host` to exactly `addresses`, with the registry's TLS settings
    /// (registries that redirect to storage with a certificate of the same CA keep working).
    fn pinned(
        &self,
        guard: &Arc<Guard>,
        host: &str,
        addresses: &[SocketAddr],
    ) -> Result<reqwest::Client, RegistryError> {
        let builder = base_builder(guard, self.timeouts).resolve_to_addrs(host, addresses);
        let builder = self.tls.apply(builder, &self.authority, self.verify_tls)?;
        builder.build().map_err(|e| RegistryError::Protocol {
            url: host.to_owned(),
            detail: format!("cannot build an HTTP client: {e}"),
        })
    }
}

/// What every client of this crate starts from: the guarded resolver, no proxy, no redirects
/// followed by reqwest, timeouts.
pub(crate) fn base_builder(guard: &Arc<Guard>, timeouts: Timeouts) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
        .no_proxy()
        .connect_timeout(timeouts.connect)
        .timeout(timeouts.total)
        // Blob downloads lift the total timeout; a stalled read still ends them.
        .read_timeout(timeouts.total)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("regkeep/", env!("CARGO_PKG_VERSION")))
}

/// A registry's HTTP client with its guard. Requests to the registry are built only through
/// [`GuardedClient::request`], which checks URLs that name an address; hops off the registry's
/// origin only through [`GuardedClient::hop_request`].
#[derive(Clone)]
pub(crate) struct GuardedClient {
    http: reqwest::Client,
    guard: Arc<Guard>,
    hops: HopClients,
}

impl GuardedClient {
    pub(crate) fn new(http: reqwest::Client, guard: Arc<Guard>, hops: HopClients) -> Self {
        GuardedClient { http, guard, hops }
    }

    pub(crate) fn guard(&self) -> &Guard {
        &self.guard
    }

    /// A request to `url` on the registry itself, when its scheme is http(s) and, if it names
    /// an IP address, the policy allows that address (names are checked when they are resolved).
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

    /// A GET of `url` on the registry itself (see [`GuardedClient::request`]).
    ///
    /// # Errors
    /// As [`GuardedClient::request`].
    pub(crate) fn get(&self, url: &reqwest::Url) -> Result<reqwest::RequestBuilder, RegistryError> {
        self.request(reqwest::Method::GET, url)
    }

    /// Whether `url` may be requested from the registry: http(s), with a host, and an address
    /// the policy allows when it names one (a name's addresses are judged when it is resolved).
    ///
    /// # Errors
    /// [`RegistryError::AddressRefused`]; `Protocol` for another scheme or no host.
    pub(crate) fn check_url(&self, url: &reqwest::Url) -> Result<(), RegistryError> {
        if let Some(address) = literal_address(url)? {
            self.guard.check(&host_text(url), address)?;
        }
        Ok(())
    }

    /// Whether a hop to `url` could be allowed at all when it names an address (names are judged
    /// when the hop is requested): lets a realm on a refused address be refused as such first.
    ///
    /// # Errors
    /// [`RegistryError::AddressRefused`]; `Protocol` for another scheme or no host.
    pub(crate) fn check_hop_url(
        &self,
        url: &reqwest::Url,
        from_internal: bool,
    ) -> Result<(), RegistryError> {
        if let Some(address) = literal_address(url)? {
            self.guard
                .check_hop(&host_text(url), address, from_internal)?;
        }
        Ok(())
    }

    /// A request to `url`, a hop off the registry's origin named by an answer that came from an
    /// internal address (`from_internal`) or not: its addresses are judged by the hop rule here
    /// and the request goes to exactly the allowed ones.
    ///
    /// # Errors
    /// [`RegistryError::AddressRefused`] when no address is allowed; `Unreachable` when the name
    /// does not resolve; `Protocol` for another scheme or no host.
    pub(crate) async fn hop_request(
        &self,
        method: reqwest::Method,
        url: &reqwest::Url,
        from_internal: bool,
    ) -> Result<reqwest::RequestBuilder, RegistryError> {
        let host = host_text(url);
        if let Some(address) = literal_address(url)? {
            self.guard.check_hop(&host, address, from_internal)?;
            // reqwest connects to a literal address as it is: this client's resolver is not asked.
            return Ok(self.http.request(method, url.clone()));
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| RegistryError::Unreachable {
                url: shown_url(url),
                detail: format!("cannot resolve {host}: {e}"),
            })?
            .collect();
        let (allowed, refused) = filter(found, |ip| self.guard.check_hop(&host, ip, from_internal));
        if allowed.is_empty() {
            return Err(match refused {
                Some(refusal) => refusal.into(),
                None => RegistryError::Unreachable {
                    url: shown_url(url),
                    detail: format!("{host} has no address"),
                },
            });
        }
        let client = self.hops.pinned(&self.guard, &host, &allowed)?;
        Ok(client.request(method, url.clone()))
    }
}

/// The address a URL names literally, if it does; an error for a URL regkeep never follows.
fn literal_address(url: &reqwest::Url) -> Result<Option<IpAddr>, RegistryError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(RegistryError::Protocol {
            url: shown_url(url),
            detail: "only http and https URLs are followed".into(),
        });
    }
    match url.host() {
        Some(url::Host::Ipv4(v4)) => Ok(Some(IpAddr::V4(v4))),
        Some(url::Host::Ipv6(v6)) => Ok(Some(IpAddr::V6(v6))),
        Some(url::Host::Domain(_)) => Ok(None),
        None => Err(RegistryError::Protocol {
            url: shown_url(url),
            detail: "the URL has no host".into(),
        }),
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

    fn client(policy: OutboundPolicy) -> GuardedClient {
        let guard = Arc::new(Guard::new(Arc::new(policy)));
        GuardedClient::new(
            reqwest::Client::new(),
            guard,
            HopClients {
                tls: Arc::new(TlsSettings::default()),
                authority: "evil.test".into(),
                verify_tls: true,
                timeouts: Timeouts::default(),
            },
        )
    }

    #[test]
    fn literal_addresses_in_any_spelling_are_checked() {
        let client = client(OutboundPolicy::default());
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
        ] {
            let parsed = reqwest::Url::parse(url).unwrap();
            assert!(
                matches!(
                    client.request(reqwest::Method::GET, &parsed),
                    Err(RegistryError::AddressRefused(_))
                ),
                "{url}"
            );
        }
        let private = reqwest::Url::parse("http://10.77.0.1/").unwrap();
        assert!(
            client.request(reqwest::Method::GET, &private).is_ok(),
            "a private registry"
        );
        assert!(client
            .request(
                reqwest::Method::GET,
                &reqwest::Url::parse("http://198.51.100.7/v2/").unwrap()
            )
            .is_ok());
        assert!(matches!(
            client.request(
                reqwest::Method::GET,
                &reqwest::Url::parse("file:///etc/passwd").unwrap()
            ),
            Err(RegistryError::Protocol { .. })
        ));
    }

    #[tokio::test]
    async fn hops_into_internal_space_only_from_internal_answers() {
        let client = client(OutboundPolicy::allowing_loopback());
        let private = reqwest::Url::parse("http://10.77.0.1/x").unwrap();
        let loopback = reqwest::Url::parse("http://localhost:9/x").unwrap();
        for url in [&private, &loopback] {
            let err = client
                .hop_request(reqwest::Method::GET, url, false)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), "address_refused", "{url}: {err}");
            assert!(
                client
                    .hop_request(reqwest::Method::GET, url, true)
                    .await
                    .is_ok(),
                "{url}"
            );
        }
        let meta = reqwest::Url::parse("http://169.254.169.254/").unwrap();
        assert!(client
            .hop_request(reqwest::Method::GET, &meta, true)
            .await
            .is_err());
        let guard = client.guard();
        assert!(guard.answered_from_internal(Some("10.0.0.5:80".parse().unwrap())));
        assert!(guard.answered_from_internal(Some("127.0.0.1:80".parse().unwrap())));
        assert!(!guard.answered_from_internal(Some("198.51.100.7:443".parse().unwrap())));
        assert!(!guard.answered_from_internal(None));
    }
}
