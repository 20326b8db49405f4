//! Retries of idempotent registry requests: a registry answering 429 (too many requests) or
//! 502/503/504 (overloaded, restarting, behind a balancer) is asked again a few times, after the
//! `Retry-After` it names (seconds or an HTTP date; capped) or else after an exponential backoff
//! with jitter. Other answers, and transport errors, go back to the caller at once.

use std::time::{Duration, SystemTime};

use rand::Rng as _;
use regkeep_domain::backoff::{Backoff, JITTER};
use reqwest::{header, StatusCode};
use tracing::debug;

use crate::{classify, RegistryError, Timeouts};

/// Attempts after the first.
pub(crate) const RETRIES: u32 = 3;
/// The first backoff; doubled on each retry.
const BASE_DELAY: Duration = Duration::from_millis(250);
/// The longest wait regkeep accepts from `Retry-After` (a registry asking for more is answered
/// with its error instead of a hang).
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Whether an answer is worth asking again.
pub(crate) fn retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// Sends `request`, retrying retryable answers up to [`RETRIES`] times. A request whose body
/// cannot be cloned is sent once.
pub(crate) async fn send_retrying(
    request: reqwest::RequestBuilder,
    url: &str,
    timeouts: Timeouts,
) -> Result<reqwest::Response, RegistryError> {
    let mut attempt = 0;
    loop {
        let Some(this) = (attempt < RETRIES).then(|| request.try_clone()).flatten() else {
            // The last attempt (or a body that cannot be sent twice): its answer is final.
            return request.send().await.map_err(|e| classify(e, url, timeouts));
        };
        let response = this.send().await.map_err(|e| classify(e, url, timeouts))?;
        if !retryable(response.status()) {
            return Ok(response);
        }
        let delay =
            retry_after(response.headers(), wall_clock_now()).unwrap_or_else(|| backoff(attempt));
        if delay > MAX_RETRY_AFTER {
            return Ok(response);
        }
        debug!(%url, status = %response.status(), ?delay, attempt, "registry asked to retry");
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// `BASE_DELAY × 2^attempt`, ±50 % (the shared schedule; retries are few, so no cap is reached).
fn backoff(attempt: u32) -> Duration {
    let schedule = Backoff {
        first: BASE_DELAY,
        max: MAX_RETRY_AFTER,
    };
    schedule.delay(attempt, 1, rand::thread_rng().gen_range(JITTER))
}

/// The wait a `Retry-After` header asks for: delta-seconds or an HTTP date (RFC 9110 10.2.3).
fn retry_after(headers: &header::HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `Retry-After` dates are wall-clock times: the one place this crate reads the wall clock (the
/// engine's injected clock is for token lifetimes, not for a registry's request to wait).
#[allow(clippy::disallowed_methods)]
fn wall_clock_now() -> SystemTime {
    SystemTime::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> header::HeaderMap {
        let mut h = header::HeaderMap::new();
        h.insert(header::RETRY_AFTER, value.parse().unwrap());
        h
    }

    #[test]
    fn retry_after_forms() {
        let now = httpdate::parse_http_date("Sun, 29 Nov 2026 04:00:00 GMT").unwrap();
        assert_eq!(
            retry_after(&headers("2"), now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            retry_after(&headers("Sun, 29 Nov 2026 04:00:07 GMT"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&headers("Sun, 29 Nov 2026 03:00:00 GMT"), now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&header::HeaderMap::new(), now), None);
    }

    #[test]
    fn backoff_grows_with_jitter() {
        for attempt in 0..3 {
            let d = backoff(attempt);
            let base = BASE_DELAY * 2u32.pow(attempt);
            assert!(d >= base / 2 && d <= base * 3 / 2, "{d:?}");
        }
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!retryable(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(!retryable(StatusCode::UNAUTHORIZED));
    }
}
