//! Redirects, followed hop by hop (the HTTP clients follow none by themselves): at most
//! [`MAX_REDIRECTS`], each hop's URL and address checked by the outbound policy as it is
//! requested, and the authorization sent only to the origin it was meant for.

use std::time::Duration;

use regkeep_domain::Secret;
use reqwest::header;

use crate::outbound::GuardedClient;
use crate::{send, shown_url, RegistryError, Timeouts};

/// Redirects followed for one request.
pub(crate) const MAX_REDIRECTS: usize = 5;

/// Where a chain of requests starts: the registry's base URL (its origin is where the
/// registry's own client goes), the first URL, and whether the answer that named it came from an
/// internal address (for a token realm: the registry's challenge; for a request to the registry
/// itself it does not matter).
pub(crate) struct Start<'a> {
    pub(crate) registry: &'a reqwest::Url,
    pub(crate) url: reqwest::Url,
    pub(crate) from_internal: bool,
}

/// Sends `method` to `start.url` and follows redirects. A URL on the registry's origin goes
/// through the registry's client; any other (a realm, a storage host, the registry's name on
/// another port) through [`GuardedClient::hop_request`], judged by the hop rule against the
/// address of the answer that named it. `authorization` goes to the first URL's origin only;
/// `headers` go everywhere. Answers the final response and where it came from. `shown` names the
/// request in errors (never a hop's URL: a presigned storage URL carries its signature).
///
/// # Errors
/// `Protocol` for a redirect without a usable Location or one too many; `AddressRefused` for a
/// hop the policy refuses; transport errors.
#[allow(clippy::too_many_arguments)] // one call per kind of request; a struct would only rename them
pub(crate) async fn get_following(
    client: &GuardedClient,
    start: Start<'_>,
    method: reqwest::Method,
    authorization: Option<&Secret>,
    headers: &[(header::HeaderName, &str)],
    timeout: Option<Duration>,
    shown: &str,
    timeouts: Timeouts,
) -> Result<(reqwest::Response, reqwest::Url), RegistryError> {
    let origin = start.url.clone();
    let mut at = start.url;
    let mut from_internal = start.from_internal;
    let mut hops = 0;
    loop {
        let mut request = if same_origin(start.registry, &at) {
            client.request(method.clone(), &at)?
        } else {
            client
                .hop_request(method.clone(), &at, from_internal)
                .await?
        };
        if let Some(a) = authorization.filter(|_| same_origin(&origin, &at)) {
            request = request.header(header::AUTHORIZATION, a.expose());
        }
        for (name, value) in headers {
            request = request.header(name, *value);
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = send(request, shown, timeouts).await?;
        if !response.status().is_redirection()
            || response.status() == reqwest::StatusCode::NOT_MODIFIED
        {
            return Ok((response, at));
        }
        hops += 1;
        // The next hop may be internal only if this answer came from an internal address.
        from_internal = client
            .guard()
            .answered_from_internal(response.remote_addr());
        let next = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| at.join(l).ok());
        match next {
            Some(next) if hops <= MAX_REDIRECTS => at = next,
            _ => {
                return Err(RegistryError::Protocol {
                    url: shown.to_owned(),
                    detail: format!(
                        "it redirected without a usable Location, or more than {MAX_REDIRECTS} times (last from {})",
                        shown_url(&at)
                    ),
                })
            }
        }
    }
}

/// Same scheme, host and port.
pub(crate) fn same_origin(a: &reqwest::Url, b: &reqwest::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        let u = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(same_origin(
            &u("https://r.example/v2/"),
            &u("https://r.example:443/x")
        ));
        assert!(!same_origin(
            &u("https://r.example/v2/"),
            &u("http://r.example/v2/")
        ));
        assert!(!same_origin(
            &u("https://r.example/"),
            &u("https://r.example:5000/")
        ));
        assert!(!same_origin(
            &u("https://r.example/"),
            &u("https://s3.example/")
        ));
    }
}
