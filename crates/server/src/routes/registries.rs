//! `/v1/registries`: list, add (with `validate`), get, update, delete (docs/design.md §1). Every answer
//! with records is a JSON array, as in Anchore; none carries a password.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use regkeep_domain::entities::RegistryRecord;
use regkeep_domain::wire::{RegistryCheck, RegistryConfiguration, RegistryConfigurationRequest};

use crate::audit;
use crate::auth::Authenticated;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::AppState;

#[utoipa::path(
    get,
    path = "/v1/registries",
    tag = "registries",
    operation_id = "list_registries",
    summary = "The account's registries (never a password)",
    responses((status = 200, description = "OK", body = Vec<regkeep_domain::wire::RegistryConfiguration>))
)]
pub async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<Vec<RegistryConfiguration>>, ApiError> {
    let records = state
        .engine
        .registries()
        .list_registries(&auth.account)
        .await?;
    Ok(Json(records.iter().map(to_wire).collect()))
}

#[utoipa::path(
    get,
    path = "/v1/registries/{registry}",
    tag = "registries",
    operation_id = "get_registry",
    summary = "One registry",
    params(("registry" = String, Path, description = "The registry as registered: `host[:port]`, `host[:port]/repository` or a wildcard (slashes are kept)")),
    responses((status = 200, description = "OK", body = Vec<regkeep_domain::wire::RegistryConfiguration>), (status = 404, description = "No such registry in the account", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn get(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(registry): Path<String>,
) -> Result<Json<Vec<RegistryConfiguration>>, ApiError> {
    let record = state
        .engine
        .registries()
        .get_registry(&auth.account, &registry)
        .await?;
    Ok(Json(vec![to_wire(&record)]))
}

#[utoipa::path(
    post,
    path = "/v1/registries",
    tag = "registries",
    operation_id = "add_registry",
    summary = "Registers a registry (checking the credentials unless validate=false)",
    params(("validate" = Option<bool>, Query, description = "Check the credentials against the registry before storing (default true; any case: anchore-cli sends `True`/`False`)")),
    request_body = regkeep_domain::wire::RegistryConfigurationRequest,
    responses((status = 200, description = "The stored registry", body = Vec<regkeep_domain::wire::RegistryConfiguration>), (status = 409, description = "The registry is already registered", body = regkeep_domain::wire::ErrorBody), (status = 422, description = "The registry or AWS refused, or could not be reached: `detail.reason` says which", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn add(
    State(state): State<AppState>,
    auth: Authenticated,
    RawQuery(query): RawQuery,
    JsonBody(request): JsonBody<RegistryConfigurationRequest>,
) -> Result<Json<Vec<RegistryConfiguration>>, ApiError> {
    let validate = validate_flag(query.as_deref())?;
    let saved = state
        .engine
        .registries()
        .add_registry(&auth.account, request, validate)
        .await?;
    audit::change(
        &auth.caller,
        "registry.added",
        &auth.account,
        saved.record.registry.as_str(),
    );
    Ok(Json(vec![to_wire(&saved.record)]))
}

#[utoipa::path(
    put,
    path = "/v1/registries/{registry}",
    tag = "registries",
    operation_id = "update_registry",
    summary = "Replaces a registry's settings (a body without registry_pass keeps the stored one)",
    params(("registry" = String, Path, description = "The registry as registered: `host[:port]`, `host[:port]/repository` or a wildcard (slashes are kept)"), ("validate" = Option<bool>, Query, description = "Check the credentials against the registry before storing (default true; any case: anchore-cli sends `True`/`False`)")),
    request_body = regkeep_domain::wire::RegistryConfigurationRequest,
    responses((status = 200, description = "The stored registry", body = Vec<regkeep_domain::wire::RegistryConfiguration>), (status = 404, description = "No such registry in the account", body = regkeep_domain::wire::ErrorBody), (status = 422, description = "The registry or AWS refused, or could not be reached: `detail.reason` says which", body = regkeep_domain::wire::ErrorBody), (status = 409, description = "The registry is declared in the registries file: change it there (`detail.reason` declared)", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn update(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(registry): Path<String>,
    RawQuery(query): RawQuery,
    JsonBody(request): JsonBody<RegistryConfigurationRequest>,
) -> Result<Json<Vec<RegistryConfiguration>>, ApiError> {
    let validate = validate_flag(query.as_deref())?;
    let saved = state
        .engine
        .registries()
        .update_registry(&auth.account, &registry, request, validate)
        .await?;
    audit::change(
        &auth.caller,
        "registry.updated",
        &auth.account,
        saved.record.registry.as_str(),
    );
    Ok(Json(vec![to_wire(&saved.record)]))
}

#[utoipa::path(
    delete,
    path = "/v1/registries/{registry}",
    tag = "registries",
    operation_id = "delete_registry",
    summary = "Removes a registry, its secret and its ECR token",
    params(("registry" = String, Path, description = "The registry as registered: `host[:port]`, `host[:port]/repository` or a wildcard (slashes are kept)")),
    responses((status = 200, description = "Removed (an empty list)", body = Vec<regkeep_domain::wire::RegistryConfiguration>), (status = 404, description = "No such registry in the account", body = regkeep_domain::wire::ErrorBody), (status = 409, description = "The registry is declared in the registries file: change it there (`detail.reason` declared)", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn delete(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(registry): Path<String>,
) -> Result<Json<Vec<RegistryConfiguration>>, ApiError> {
    state
        .engine
        .registries()
        .delete_registry(&auth.account, &registry)
        .await?;
    audit::change(&auth.caller, "registry.deleted", &auth.account, &registry);
    Ok(Json(Vec::new()))
}

/// `POST /v1/registries/{registry}/check`: resolves the registry's credential now (minting an
/// ECR token if needed) and logs in to the registry with it. Answers what it found, never the
/// credential.
///
/// `?login=false` only resolves the credential (no registry contact): what a client that is about
/// to pull would get.
#[utoipa::path(
    post,
    path = "/v1/registries/{registry}/check",
    tag = "registries",
    operation_id = "check_registry",
    summary = "Resolves the registry's credential now and logs in with it",
    params(("registry" = String, Path, description = "The registry as registered: `host[:port]`, `host[:port]/repository` or a wildcard (slashes are kept)"), ("login" = Option<bool>, Query, description = "Log in to the registry (default true); false only resolves the credential")),
    responses((status = 200, description = "The credential works", body = regkeep_domain::wire::RegistryCheck), (status = 404, description = "No such registry in the account", body = regkeep_domain::wire::ErrorBody), (status = 405, description = "POST on a registry path that does not end in /check", body = regkeep_domain::wire::ErrorBody), (status = 422, description = "The registry or AWS refused, or could not be reached: `detail.reason` says which", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn check(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let Some(registry) = path.strip_suffix("/check") else {
        // A 405 names the methods the path has (RFC 9110 §15.5.6).
        return Ok((
            [(header::ALLOW, HeaderValue::from_static("GET,PUT,DELETE"))],
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "POST on a registry is only `/v1/registries/{registry}/check`; add registries with POST /v1/registries",
            ),
        )
            .into_response());
    };
    let login = bool_flag(query.as_deref(), "login")?;
    if !login {
        let credential = state
            .engine
            .registries()
            .resolve_credential(&auth.account, registry)
            .await?;
        return Ok(Json(RegistryCheck {
            registry: credential.registry.to_string(),
            ok: true,
            logged_in: false,
            checked_at: None,
            token_usable_until: credential.usable_until,
            renewed_after_refusal: None,
        })
        .into_response());
    }
    let report = state
        .engine
        .registries()
        .check_registry(&auth.account, registry)
        .await?;
    Ok(Json(RegistryCheck {
        registry: report.registry.to_string(),
        ok: true,
        logged_in: true,
        checked_at: Some(report.checked_at),
        token_usable_until: report.usable_until,
        renewed_after_refusal: Some(report.renewed_after_refusal),
    })
    .into_response())
}

/// A method a registry path does not serve: 405 with the methods it does. GET, PUT and DELETE
/// act on the registry the path names; POST only checks one (`…/check`). A path ending in
/// `/check` names a check and also a registry whose last segment is `check`, so it has all four.
pub async fn other_method(Path(path): Path<String>) -> Response {
    let allow = if path.ends_with("/check") {
        "GET,PUT,DELETE,POST"
    } else {
        "GET,PUT,DELETE"
    };
    (
        [(header::ALLOW, HeaderValue::from_static(allow))],
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("this path does not answer that method: use one of {allow}"),
        ),
    )
        .into_response()
}

/// `validate` from the query string: true/false in any case (anchore-cli sends `True`/`False`);
/// absent means true.
fn validate_flag(query: Option<&str>) -> Result<bool, ApiError> {
    bool_flag(query, "validate")
}

/// A boolean query parameter, true/false in any case; absent means true.
fn bool_flag(query: Option<&str>, name: &str) -> Result<bool, ApiError> {
    let mut flag = true;
    for (key, value) in url_pairs(query.unwrap_or_default()) {
        if key == name {
            flag = match value.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "query parameter {name}=`{value}` is not a boolean: use true or false"
                    )))
                }
            };
        }
    }
    Ok(flag)
}

fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        (decode(k), decode(v))
    })
}

pub(crate) fn to_wire(record: &RegistryRecord) -> RegistryConfiguration {
    RegistryConfiguration {
        registry: record.registry.to_string(),
        registry_name: record.registry_name.clone(),
        registry_user: record.registry_user.clone(),
        registry_type: record.registry_type.as_str().to_owned(),
        registry_verify: record.registry_verify,
        user_id: record.account.to_string(),
        created_at: record.created_at,
        last_updated: record.last_updated,
        last_validated: record.last_validated,
        token_expires_at: record.token_status.as_ref().and_then(|t| t.expires_at),
        token_renewed_at: record.token_status.as_ref().and_then(|t| t.last_renewed_at),
        token_last_error: record
            .token_status
            .as_ref()
            .and_then(|t| t.last_error.clone()),
        declared_in: record.declared_in.clone(),
        declaration_error: record.declaration_error.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_flag_accepts_any_case() {
        assert!(validate_flag(None).unwrap());
        assert!(validate_flag(Some("validate=True")).unwrap());
        assert!(!validate_flag(Some("validate=False")).unwrap());
        assert!(!validate_flag(Some("x=1&validate=FALSE")).unwrap());
        assert!(validate_flag(Some("validate=maybe")).is_err());
    }
}
