//! Liveness, version, and the API root that anchore-cli calls before every command.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use regkeep_domain::wire::{
    ProbeStatus, SchemaVersion, ServiceStatus, StatusResponse, SystemStatus, Version, VersionOf,
};
use serde_json::{json, Value};

use crate::auth::{Authenticated, AuthenticatedCaller};
use crate::error::ApiError;
use crate::AppState;

/// Liveness: the database answers and (SQLite) its file is the one opened. Fails only where a
/// restart is the remedy.
#[utoipa::path(
    get,
    path = "/health",
    tag = "system",
    operation_id = "health",
    summary = "Liveness: the database answers",
    responses((status = 200, description = "Healthy", body = regkeep_domain::wire::ProbeStatus))
)]
pub async fn health(State(state): State<AppState>) -> Result<Json<ProbeStatus>, ApiError> {
    let store = state.engine.database();
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
    Ok(Json(ProbeStatus {
        status: "ok".into(),
    }))
}

/// Readiness: the database can be written now (a small write succeeds; the disk is not full,
/// not read-only, the file is still there). Reveals nothing but the state.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "system",
    operation_id = "ready",
    summary = "Readiness: the database can be written now",
    responses((status = 200, description = "Ready", body = regkeep_domain::wire::ProbeStatus))
)]
pub async fn ready(State(state): State<AppState>) -> Result<Json<ProbeStatus>, ApiError> {
    if !ready_now(&state).await {
        return Err(ApiError {
            retry_after: Some(10),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the database cannot be written now (the cause is in the server's log)",
            )
        });
    }
    Ok(Json(ProbeStatus {
        status: "ready".into(),
    }))
}

/// Whether the database can be written now; probed at most once a second, one probe at a time.
async fn ready_now(state: &AppState) -> bool {
    let mut last = state.readiness.lock().await;
    let ready = match *last {
        Some((at, ready)) if at.elapsed() < std::time::Duration::from_secs(1) => ready,
        _ => {
            let ready = match state.engine.database().check_writable().await {
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
    ready
}

/// `GET /version` (Anchore's shape): regkeep's version, the API's, and the database schema's.
#[utoipa::path(
    get,
    path = "/version",
    tag = "system",
    operation_id = "version",
    summary = "The service's, the API's and the database schema's versions",
    responses((status = 200, description = "OK", body = regkeep_domain::wire::Version))
)]
pub async fn version(State(state): State<AppState>) -> Json<Version> {
    Json(Version {
        service: VersionOf {
            version: env!("CARGO_PKG_VERSION").into(),
        },
        api: VersionOf {
            version: ANCHORE_API_VERSION.into(),
        },
        db: SchemaVersion {
            schema_version: state.engine.database().schema_version().to_string(),
        },
    })
}

/// `GET /v1` (anchore-cli calls it before every command): the API version, as Anchore answers.
/// A right password is enough, whatever the account's state (Anchore authorises no action
/// here): the user of a disabled account then gets the command's own 403, which says why,
/// instead of anchore-cli's "could not access anchore service".
#[utoipa::path(
    get,
    path = "/v1",
    tag = "system",
    operation_id = "api_root",
    summary = "The API prefix (anchore-cli calls it before every command)",
    responses((status = 200, description = "`\"v1\"`", body = String, content_type = "application/json"))
)]
pub async fn root(
    auth: Result<AuthenticatedCaller, ApiError>,
) -> Result<Json<&'static str>, ApiError> {
    match auth {
        Ok(_) => Ok(Json(API_PREFIX)),
        Err(e) if e.status == StatusCode::FORBIDDEN => Ok(Json(API_PREFIX)),
        Err(e) => Err(e),
    }
}

/// What `GET /v1` answers (Anchore's API prefix).
const API_PREFIX: &str = "v1";

/// The version of Anchore's API description regkeep's answers follow (anchore-cli reads
/// `info.version` from `/swagger.json` to choose how to ask for images by tag).
pub const ANCHORE_API_VERSION: &str = "0.1.20";

/// `GET /swagger.json` and `/v1/swagger.json`: what anchore-cli reads to learn the API's
/// version. regkeep serves the Anchore paths its README lists; this document names the version
/// of Anchore's API they follow, not every path (README, API).
#[utoipa::path(
    get,
    path = "/swagger.json",
    tag = "system",
    operation_id = "swagger",
    summary = "Anchore's API version, for anchore-cli (no paths: this document has them)",
    responses((status = 200, description = "OK", body = Object))
)]
pub async fn swagger() -> Json<Value> {
    Json(json!({
        "swagger": "2.0",
        "info": {
            "title": "regkeep (Anchore Engine API: registries, accounts, users, images, subscriptions, events, system)",
            "version": ANCHORE_API_VERSION,
        },
        "basePath": "/v1",
        "paths": {},
    }))
}

/// `GET /v1/openapi.json`: the OpenAPI 3.1 document of every route, request and answer
/// ([`crate::openapi`]), made once.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "system",
    operation_id = "openapi",
    summary = "This OpenAPI 3.1 document",
    responses((status = 200, description = "OK", body = Object))
)]
pub async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        crate::openapi::document_json(),
    )
}

/// `GET /v1/status`: this server's own status (Anchore's `StatusResponse`).
#[utoipa::path(
    get,
    path = "/v1/status",
    tag = "system",
    operation_id = "status",
    summary = "This server's status",
    responses((status = 200, description = "OK", body = regkeep_domain::wire::StatusResponse))
)]
pub async fn status(State(state): State<AppState>, _auth: Authenticated) -> Json<StatusResponse> {
    let database = database_state(&state).await;
    Json(detail(&state, database.0, &database.1))
}

/// `GET /v1/system` (anchore-cli `system status`): regkeep's parts, each as Anchore lists a
/// service: the API, the database, ECR token renewal and the tag watcher, with their real
/// state. Admins only (README, "Differences from Anchore, on purpose"): the host name, the
/// listen address and the state of work done for every account are not a tenant's to see.
#[utoipa::path(
    get,
    path = "/v1/system",
    tag = "system",
    operation_id = "system_status",
    summary = "regkeep's parts and their state (admins only)",
    responses((status = 200, description = "OK", body = regkeep_domain::wire::SystemStatus))
)]
pub async fn system(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<SystemStatus>, ApiError> {
    if !auth.caller.is_admin() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "user {} is not an admin: the system status is for users of the admin account",
                auth.caller.user
            ),
        ));
    }
    let (db_up, db_message) = database_state(&state).await;
    let renewal = state.engine.ecr_tokens().heartbeat().state();
    let renewal_message = format!(
        "{}; {} ECR token(s) kept",
        renewal.message,
        state.engine.ecr_tokens().kept()
    );
    let watcher = state.engine.watch().heartbeat().state();
    let parts = [
        ("regkeep-api", true, "serving".to_owned()),
        ("database", db_up, db_message),
        ("ecr-token-renewal", renewal.alive, renewal_message),
        ("tag-watcher", watcher.alive, watcher.message),
    ];
    let service_states = parts
        .into_iter()
        .map(|(name, up, message)| ServiceStatus {
            servicename: name.into(),
            hostid: state.host_id.to_string(),
            base_url: state.base_url.to_string(),
            status: up,
            status_message: if up {
                "available".into()
            } else {
                "down".into()
            },
            version: env!("CARGO_PKG_VERSION").into(),
            service_detail: detail(&state, up, &message),
        })
        .collect();
    Ok(Json(SystemStatus { service_states }))
}

/// The database's state: it answers and can be written (the readiness probe, cached 1 s).
async fn database_state(state: &AppState) -> (bool, String) {
    let store = state.engine.database();
    if store.ping().await.is_err() {
        return (
            false,
            format!(
                "{} does not answer (the cause is in the server's log)",
                store.backend_name()
            ),
        );
    }
    if ready_now(state).await {
        (
            true,
            format!("{} answers and can be written", store.backend_name()),
        )
    } else {
        (
            false,
            format!(
                "{} answers but cannot be written (the cause is in the server's log)",
                store.backend_name()
            ),
        )
    }
}

fn detail(state: &AppState, up: bool, message: &str) -> StatusResponse {
    StatusResponse {
        available: up,
        busy: false,
        up,
        message: message.to_owned(),
        version: env!("CARGO_PKG_VERSION").into(),
        db_version: state.engine.database().schema_version().to_string(),
        detail: json!({}),
    }
}
