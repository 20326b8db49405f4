//! `/v1/apikeys`: API keys of the acting account (docs/design.md §3.8). Made and revoked by people
//! only (a password login); the key itself is in the answer that made it, never again.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use regkeep_domain::entities::ApiKeyRecord;
use regkeep_domain::wire::{ApiKey, ApiKeyCreationRequest};
use regkeep_domain::{Secret, Timestamp};
use regkeep_engine::api_keys::key_state;
use regkeep_engine::KeyState;

use crate::audit;
use crate::auth::Authenticated;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::AppState;

#[utoipa::path(
    get,
    path = "/v1/apikeys",
    tag = "apikeys",
    operation_id = "list_api_keys",
    summary = "The account's API keys (never a key)",
    responses((status = 200, description = "OK", body = Vec<regkeep_domain::wire::ApiKey>))
)]
pub async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<Vec<ApiKey>>, ApiError> {
    let keys = state.engine.accounts().list_api_keys(&auth.account).await?;
    let now = state.engine.accounts().now();
    Ok(Json(keys.iter().map(|k| to_wire(k, now, None)).collect()))
}

#[utoipa::path(
    post,
    path = "/v1/apikeys",
    tag = "apikeys",
    operation_id = "create_api_key",
    summary = "Makes an API key (people only): the key is in this answer and nowhere else",
    request_body = regkeep_domain::wire::ApiKeyCreationRequest,
    responses((status = 201, description = "The key, with `key` set", body = regkeep_domain::wire::ApiKey))
)]
pub async fn create(
    State(state): State<AppState>,
    auth: Authenticated,
    JsonBody(request): JsonBody<ApiKeyCreationRequest>,
) -> Result<(StatusCode, Json<ApiKey>), ApiError> {
    let made = state
        .engine
        .accounts()
        .create_api_key(&auth.caller, &auth.account, request)
        .await?;
    audit::change(
        &auth.caller,
        "api_key.created",
        &auth.account,
        made.record.key_id.as_str(),
    );
    let now = state.engine.accounts().now();
    Ok((
        StatusCode::CREATED,
        Json(to_wire(&made.record, now, Some(made.key))),
    ))
}

#[utoipa::path(
    delete,
    path = "/v1/apikeys/{key_id}",
    tag = "apikeys",
    operation_id = "revoke_api_key",
    summary = "Revokes an API key at once",
    params(("key_id" = String, Path, description = "An API key ID: the 16 hex digits `regkeep apikey list` shows", pattern = "^[0-9a-f]{16}$")),
    responses((status = 200, description = "The revoked key", body = regkeep_domain::wire::ApiKey), (status = 404, description = "No such key in the account", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn revoke(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(key_id): Path<String>,
) -> Result<Json<ApiKey>, ApiError> {
    let record = state
        .engine
        .accounts()
        .revoke_api_key(&auth.caller, &auth.account, &key_id)
        .await?;
    audit::change(
        &auth.caller,
        "api_key.revoked",
        &auth.account,
        record.key_id.as_str(),
    );
    Ok(Json(to_wire(&record, state.engine.accounts().now(), None)))
}

fn to_wire(record: &ApiKeyRecord, now: Timestamp, key: Option<Secret>) -> ApiKey {
    ApiKey {
        key_id: record.key_id.to_string(),
        account: record.account.to_string(),
        created_by: record.created_by.to_string(),
        description: record.description.clone(),
        scopes: record
            .scopes
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect(),
        created_at: record.created_at,
        expires_at: record.expires_at,
        last_used_at: record.last_used_at,
        revoked_at: record.revoked_at,
        state: match key_state(record, now) {
            None => "active",
            Some(KeyState::Expired(_)) => "expired",
            Some(KeyState::Revoked(_)) => "revoked",
        }
        .into(),
        key,
    }
}
