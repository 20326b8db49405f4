//! Prometheus metrics (OpenMetrics text) on their own address, `metrics_listen`, never on the API:
//! the series name registries of every account. HTTP requests by route pattern (never the raw
//! path: no user input in a label), method and status, as latency histograms whose `_count` is
//! the request count; the engine's counters (`regkeep_engine::metrics`).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route pattern (`/v1/registries/{*registry}`).
    pub route: Route,
    pub method: &'static str,
    pub status: u16,
}

/// A route pattern as a label: the router's own string, shared (no copy per request).
#[derive(Clone, Debug)]
pub struct Route(MatchedPath);

impl Route {
    fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::hash::Hash for Route {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Route {}

impl EncodeLabelValue for Route {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

fn method_label(method: &axum::http::Method) -> &'static str {
    match *method {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PUT => "PUT",
        axum::http::Method::DELETE => "DELETE",
        axum::http::Method::HEAD => "HEAD",
        _ => "other",
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The API's own series: one histogram per route pattern, method and status, whose `_count` is
/// the number of requests. One family and shared label strings: a second family and copied
/// labels cost a sixth of the API's throughput (bench/api.sh).
#[derive(Clone)]
pub struct HttpMetrics {
    pub requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            requests: Family::new_with_constructor(latency_histogram),
        }
    }
}

/// Every series regkeep exposes.
pub fn registry(
    engine: &regkeep_engine::metrics::EngineMetrics,
    http: Option<&HttpMetrics>,
) -> Registry {
    let mut registry = Registry::default();
    if let Some(http) = http {
        registry.register(
            "regkeep_http_request_duration_seconds",
            "API requests by route pattern, method and status: latency, and their number (_count)",
            http.requests.clone(),
        );
    }
    engine.register(&mut registry);
    registry
}

/// Counts and times every API request (routes that matched: the layer is a route layer).
pub async fn track(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let Some(route) = request.extensions().get::<MatchedPath>().cloned() else {
        return next.run(request).await;
    };
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route: Route(route),
            method,
            status: response.status().as_u16(),
        })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// What `GET /metrics` on the metrics address needs.
#[derive(Clone)]
pub struct Exposition {
    pub engine: regkeep_engine::Engine,
    pub registry: Arc<Registry>,
}

pub async fn expose(State(exposition): State<Exposition>) -> Response {
    exposition.engine.refresh_metrics();
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &exposition.registry).is_err() {
        return (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "the metrics could not be written",
        )
            .into_response();
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
