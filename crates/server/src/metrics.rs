//! Prometheus metrics (OpenMetrics text) on their own address, `metrics_listen`, never on the API:
//! the series name registries of every account. HTTP requests by route pattern (never the raw
//! path: no user input in a label), method and status, with latency histograms; the engine's
//! counters (`regkeep_engine::metrics`).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The matched route pattern (`/v1/registries/{*registry}`), or `unmatched`.
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub method: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The API's own series. Cheap to clone.
#[derive(Clone)]
pub struct HttpMetrics {
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

/// Every series regkeep exposes.
pub fn registry(engine: &regkeep_engine::metrics::EngineMetrics, http: &HttpMetrics) -> Registry {
    let mut registry = Registry::default();
    registry.register(
        "regkeep_http_requests",
        "API requests by route pattern, method and status",
        http.requests.clone(),
    );
    registry.register(
        "regkeep_http_request_duration_seconds",
        "API request latency by route pattern and method",
        http.latency.clone(),
    );
    engine.register(&mut registry);
    registry
}

/// Counts and times every API request.
pub async fn track(State(metrics): State<HttpMetrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request
        .method()
        .as_str()
        .chars()
        .take(10)
        .collect::<String>();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .latency
        .get_or_create(&RouteLabels {
            route: route.clone(),
            method: method.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status: response.status().as_u16(),
        })
        .inc();
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
