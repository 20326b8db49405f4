//! `/v1/registries`: list, add (with `validate`), get, update, delete (docs/design.md §1). Every answer
//! with records is a JSON array, as in Anchore; none carries a password.

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use regkeep_domain::entities::RegistryRecord;
use regkeep_domain::wire::{RegistryConfiguration, RegistryConfigurationRequest};

use crate::audit;
use crate::auth::Authenticated;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::AppState;

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

pub async fn delete(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(registry): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state
        .engine
        .registries()
        .delete_registry(&auth.account, &registry)
        .await?;
    audit::change(&auth.caller, "registry.deleted", &auth.account, &registry);
    Ok(Json(serde_json::json!([])))
}

/// `POST /v1/registries/{registry}/check`: resolves the registry's credential now (minting an
/// ECR token if needed) and logs in to the registry with it. Answers what it found, never the
/// credential.
///
/// `?login=false` only resolves the credential (no registry contact): what a client that is about
/// to pull would get.
pub async fn check(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(registry) = path.strip_suffix("/check") else {
        return Err(ApiError::new(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            "POST on a registry is only `/v1/registries/{registry}/check`; add registries with POST /v1/registries",
        ));
    };
    let login = bool_flag(query.as_deref(), "login")?;
    if !login {
        let credential = state
            .engine
            .registries()
            .resolve_credential(&auth.account, registry)
            .await?;
        return Ok(Json(serde_json::json!({
            "registry": credential.registry.to_string(),
            "ok": true,
            "logged_in": false,
            "token_usable_until": credential.usable_until,
        })));
    }
    let report = state
        .engine
        .registries()
        .check_registry(&auth.account, registry)
        .await?;
    Ok(Json(serde_json::json!({
        "registry": report.registry.to_string(),
        "ok": true,
        "logged_in": true,
        "checked_at": report.checked_at,
        "token_usable_until": report.usable_until,
        "renewed_after_refusal": report.renewed_after_refusal,
    })))
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
