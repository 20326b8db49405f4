//! `POST /v1/credentials/resolve`: the credential handout (docs/design.md §3.8), the one answer
//! that carries a secret, only to API keys with `credentials:read`. Every handout is an audit
//! line (key, account, registry entry; never the secret).

use axum::extract::State;
use axum::Json;
use regkeep_domain::wire::{CredentialHandout, CredentialRequest};

use crate::audit;
use crate::auth::Authenticated;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::AppState;

#[utoipa::path(
    post,
    path = "/v1/credentials/resolve",
    tag = "credentials",
    operation_id = "resolve_credential",
    summary = "The credential handout: the secret for an image or a registry host (API keys scoped credentials:read only)",
    request_body = regkeep_domain::wire::CredentialRequest,
    responses((status = 200, description = "The credential", body = regkeep_domain::wire::CredentialHandout), (status = 404, description = "No registry of the account serves the image or host", body = regkeep_domain::wire::ErrorBody), (status = 422, description = "The registry or AWS refused, or could not be reached: `detail.reason` says which", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn resolve(
    State(state): State<AppState>,
    auth: Authenticated,
    JsonBody(request): JsonBody<CredentialRequest>,
) -> Result<Json<CredentialHandout>, ApiError> {
    // The key was checked when the headers came; the body may have taken its time. Nothing
    // is handed out to a key revoked, expired or disabled since.
    state.engine.accounts().recheck(&auth.caller).await?;
    let handout = state
        .engine
        .registries()
        .hand_out(&auth.caller, &auth.account, &request)
        .await?;
    // And after: finding the entry and minting a token take time too.
    state.engine.accounts().recheck(&auth.caller).await?;
    let credential = handout.credential;
    audit::handout(&auth.caller, &auth.account, credential.registry.as_str());
    state
        .engine
        .metrics()
        .handouts
        .get_or_create(&regkeep_engine::metrics::HandoutLabels {
            registry_type: handout.registry_type.as_str().into(),
        })
        .inc();
    Ok(Json(CredentialHandout {
        registry: credential.registry.to_string(),
        host: handout.host,
        scope: handout.scope.as_str().into(),
        username: credential.username,
        secret: credential.password,
        expires_at: credential.usable_until,
        registry_type: handout.registry_type.as_str().into(),
    }))
}
