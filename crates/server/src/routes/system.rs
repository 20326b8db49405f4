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

/// Liveness: the database answers and (SQLite) its file is the one opened. Fails only where a
/// restart is the remedy.
pub async fn health(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let store = state.engine.store();
    let checked = match store.check_file() {
        Ok(()) => store.ping().await,
        Err(e) => Err(e),
    };
    checked.map_err(|e| {
        tracing::error!(error = %e, "health check failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not healthy: the database does not answer, or its file was removed or replaced (the cause is in the server's log)",
        )
    })?;
    Ok(Json(json!({"status": "ok"})))
}

/// Readiness: the database can be written now (a small write succeeds; the disk is not full,
/// not read-only, the file is still there). Reveals nothing but the state.
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut last = state.readiness.lock().await;
    let ready = match *last {
        Some((at, ready)) if at.elapsed() < std::time::Duration::from_secs(1) => ready,
        _ => {
            let ready = match state.engine.store().check_writable().await {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, "readiness check failed");
                    false
                }
            };
            *last = Some((std::time::Instant::now(), ready));
            ready
        }
    };
    if !ready {
        return Err(ApiError {
            retry_after: Some(10),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the database cannot be written now (the cause is in the server's log)",
            )
        });
    }
    Ok(Json(json!({"status": "ready"})))
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
