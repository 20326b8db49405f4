//! Liveness, version, and the API root that anchore-cli calls before every command.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use regkeep_domain::wire::Version;
use serde_json::{json, Value};

use crate::auth::AuthenticatedCaller;
use crate::error::ApiError;
use crate::AppState;

/// Semantic version of the API shape (Anchore's registries API, v1).
pub const API_VERSION: &str = "1";

pub async fn health(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.engine.store().ping().await.map_err(|e| {
        tracing::error!(error = %e, "health check: database unreachable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the database does not answer",
        )
    })?;
    Ok(Json(json!({"status": "ok"})))
}

pub async fn version() -> Json<Version> {
    Json(current_version())
}

pub async fn root(_auth: AuthenticatedCaller) -> Json<Version> {
    Json(current_version())
}

fn current_version() -> Version {
    Version {
        service: "regkeep".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: API_VERSION.into(),
    }
}
