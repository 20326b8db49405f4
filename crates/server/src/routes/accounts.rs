//! Accounts and users on Anchore's paths (docs/design.md §2), so `anchore-cli account ...` works.
//! Changes to users or accounts end logins at once (the engine invalidates its login cache) and
//! are written to the audit log.

use axum::extract::Query;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use regkeep_domain::entities::{AccountRecord, UserRecord};
use regkeep_domain::wire::{
    AccessCredential, Account, AccountCreationRequest, AccountStatus, CredentialSummary, User,
    UserCreationRequest, MASKED_CREDENTIAL,
};
use serde::Deserialize;

use crate::audit;
use crate::auth::Authenticated;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::AppState;

/// The account the caller acts in (its own, or the one an admin names in `x-anchore-account`,
/// as Anchore answers).
#[utoipa::path(
    get,
    path = "/v1/account",
    tag = "accounts",
    operation_id = "own_account",
    summary = "The account the caller acts in",
    responses((status = 200, description = "OK", body = regkeep_domain::wire::Account))
)]
pub async fn own_account(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<Account>, ApiError> {
    Ok(Json(account_wire(
        &state
            .engine
            .accounts()
            .acting_account_record(&auth.account)
            .await?,
    )))
}

#[utoipa::path(
    get,
    path = "/v1/user",
    tag = "users",
    operation_id = "own_user",
    summary = "The calling user",
    responses((status = 200, description = "OK", body = regkeep_domain::wire::User))
)]
pub async fn own_user(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<User>, ApiError> {
    Ok(Json(user_wire(
        &state.engine.accounts().own_user(&auth.caller).await?,
    )))
}

#[utoipa::path(
    get,
    path = "/v1/accounts",
    tag = "accounts",
    operation_id = "list_accounts",
    summary = "Every account (admins only)",
    responses((status = 200, description = "OK", body = Vec<regkeep_domain::wire::Account>))
)]
pub async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<Vec<Account>>, ApiError> {
    let records = state.engine.accounts().list_accounts(&auth.caller).await?;
    Ok(Json(records.iter().map(account_wire).collect()))
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{account}",
    tag = "accounts",
    operation_id = "get_account",
    summary = "One account (admins only)",
    params(("account" = String, Path, description = "An account name", pattern = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")),
    responses((status = 200, description = "OK", body = regkeep_domain::wire::Account), (status = 404, description = "No such account", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn get(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(account): Path<String>,
) -> Result<Json<Account>, ApiError> {
    Ok(Json(account_wire(
        &state
            .engine
            .accounts()
            .get_account(&auth.caller, &account)
            .await?,
    )))
}

#[utoipa::path(
    post,
    path = "/v1/accounts",
    tag = "accounts",
    operation_id = "create_account",
    summary = "Creates an account (admins only)",
    request_body = regkeep_domain::wire::AccountCreationRequest,
    responses((status = 200, description = "The account", body = regkeep_domain::wire::Account))
)]
pub async fn create(
    State(state): State<AppState>,
    auth: Authenticated,
    JsonBody(request): JsonBody<AccountCreationRequest>,
) -> Result<Json<Account>, ApiError> {
    let record = state
        .engine
        .accounts()
        .create_account(&auth.caller, request)
        .await?;
    audit::change(
        &auth.caller,
        "account.created",
        &record.name,
        record.name.as_str(),
    );
    Ok(Json(account_wire(&record)))
}

#[utoipa::path(
    put,
    path = "/v1/accounts/{account}/state",
    tag = "accounts",
    operation_id = "set_account_state",
    summary = "Enables or disables an account (admins only)",
    params(("account" = String, Path, description = "An account name", pattern = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")),
    request_body = regkeep_domain::wire::AccountStatus,
    responses((status = 200, description = "The new state", body = regkeep_domain::wire::AccountStatus), (status = 404, description = "No such account", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn set_state(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(account): Path<String>,
    JsonBody(status): JsonBody<AccountStatus>,
) -> Result<Json<AccountStatus>, ApiError> {
    let record = state
        .engine
        .accounts()
        .set_account_state(&auth.caller, &account, &status.state)
        .await?;
    audit::change(
        &auth.caller,
        &format!("account.{}", record.state.as_str()),
        &record.name,
        record.name.as_str(),
    );
    Ok(Json(AccountStatus {
        state: record.state.as_str().to_owned(),
    }))
}

/// `DELETE /v1/accounts/{a}`: 200 with the account, now `deleting`, as Anchore answers; its
/// resources are removed in the background, then `GET` answers 404.
#[utoipa::path(
    delete,
    path = "/v1/accounts/{account}",
    tag = "accounts",
    operation_id = "delete_account",
    summary = "Deletes a disabled account and, in the background, everything in it (admins only)",
    params(("account" = String, Path, description = "An account name", pattern = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")),
    responses((status = 200, description = "The account, now `deleting`", body = regkeep_domain::wire::Account), (status = 404, description = "No such account", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn delete(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(account): Path<String>,
) -> Result<Json<Account>, ApiError> {
    let record = state
        .engine
        .accounts()
        .delete_account(&auth.caller, &account)
        .await?;
    audit::change(&auth.caller, "account.deleted", &auth.account, &account);
    Ok(Json(account_wire(&record)))
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{account}/users",
    tag = "users",
    operation_id = "list_users",
    summary = "An account's users (admins only)",
    params(("account" = String, Path, description = "An account name", pattern = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")),
    responses((status = 200, description = "OK", body = Vec<regkeep_domain::wire::User>), (status = 404, description = "No such account", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn list_users(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(account): Path<String>,
) -> Result<Json<Vec<User>>, ApiError> {
    let users = state
        .engine
        .accounts()
        .list_users(&auth.caller, &account)
        .await?;
    Ok(Json(users.iter().map(user_wire).collect()))
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{account}/users/{user}",
    tag = "users",
    operation_id = "get_user",
    summary = "One user (admins only)",
    params(("account" = String, Path, description = "An account name", pattern = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"), ("user" = String, Path, description = "A user name", pattern = "^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")),
    responses((status = 200, description = "OK", body = regkeep_domain::wire::User), (status = 404, description = "No such account or user", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn get_user(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((account, user)): Path<(String, String)>,
) -> Result<Json<User>, ApiError> {
    Ok(Json(user_wire(
        &state
            .engine
            .accounts()
            .get_user(&auth.caller, &account, &user)
            .await?,
    )))
}

#[utoipa::path(
    post,
    path = "/v1/accounts/{account}/users",
    tag = "users",
    operation_id = "create_user",
    summary = "Creates a user (admins only)",
    params(("account" = String, Path, description = "An account name", pattern = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")),
    request_body = regkeep_domain::wire::UserCreationRequest,
    responses((status = 200, description = "The user", body = regkeep_domain::wire::User), (status = 404, description = "No such account", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn create_user(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(account): Path<String>,
    JsonBody(request): JsonBody<UserCreationRequest>,
) -> Result<Json<User>, ApiError> {
    let record = state
        .engine
        .accounts()
        .create_user(&auth.caller, &account, request)
        .await?;
    audit::change(
        &auth.caller,
        "user.created",
        &record.account,
        record.username.as_str(),
    );
    Ok(Json(user_wire(&record)))
}

#[utoipa::path(
    delete,
    path = "/v1/accounts/{account}/users/{user}",
    tag = "users",
    operation_id = "delete_user",
    summary = "Deletes a user and revokes the API keys it made (admins only)",
    params(("account" = String, Path, description = "An account name", pattern = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"), ("user" = String, Path, description = "A user name", pattern = "^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such account or user", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn delete_user(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((account, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state
        .engine
        .accounts()
        .delete_user(&auth.caller, &account, &user)
        .await?;
    audit::change(
        &auth.caller,
        "user.deleted",
        &auth.account,
        &format!("{account}/{user}"),
    );
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post,
    path = "/v1/accounts/{account}/users/{user}/credentials",
    tag = "users",
    operation_id = "set_password",
    summary = "Sets a user's password (admins only)",
    params(("account" = String, Path, description = "An account name", pattern = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"), ("user" = String, Path, description = "A user name", pattern = "^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")),
    request_body = regkeep_domain::wire::AccessCredential,
    responses((status = 200, description = "The new credential, masked", body = regkeep_domain::wire::CredentialSummary), (status = 404, description = "No such account or user", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn set_password(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((account, user)): Path<(String, String)>,
    JsonBody(credential): JsonBody<AccessCredential>,
) -> Result<Json<CredentialSummary>, ApiError> {
    let record = change_password(&state, &auth, &account, &user, credential).await?;
    Ok(Json(password_summary(&record)))
}

/// The answer to a password change: the new credential's summary, as Anchore answers.
fn password_summary(record: &UserRecord) -> CredentialSummary {
    CredentialSummary {
        credential_type: "password".into(),
        value: MASKED_CREDENTIAL.into(),
        created_at: record.last_updated,
    }
}

/// Sets a password, audits it, and removes the generated admin password file once the admin's
/// password is no longer the generated one.
async fn change_password(
    state: &AppState,
    auth: &Authenticated,
    account: &str,
    user: &str,
    credential: AccessCredential,
) -> Result<UserRecord, ApiError> {
    let record = state
        .engine
        .accounts()
        .set_user_password(&auth.caller, account, user, credential)
        .await?;
    audit::change(
        &auth.caller,
        "user.password_changed",
        &record.account,
        record.username.as_str(),
    );
    // The generated first password is no longer the admin's: its file goes.
    let file = &state.admin_password_file;
    if record.username == regkeep_domain::UserName::admin()
        && record.account == regkeep_domain::AccountName::admin()
        && file.exists()
    {
        match std::fs::remove_file(file) {
            Ok(()) => {
                tracing::info!(file = %file.display(), "the admin's password was changed: removed the generated password file")
            }
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "the admin's password was changed but the generated password file could not be removed: delete it")
            }
        }
    }
    Ok(record)
}

/// `GET /v1/user/credentials`: the caller's own credentials (never their values).
#[utoipa::path(
    get,
    path = "/v1/user/credentials",
    tag = "users",
    operation_id = "own_credentials",
    summary = "The caller's credentials, masked",
    responses((status = 200, description = "OK", body = Vec<regkeep_domain::wire::CredentialSummary>))
)]
pub async fn own_credentials(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<Vec<CredentialSummary>>, ApiError> {
    let summaries = state
        .engine
        .accounts()
        .own_credentials(&auth.caller)
        .await?;
    Ok(Json(summaries.iter().map(credential_wire).collect()))
}

/// `POST /v1/user/credentials`: the caller changes its own password.
#[utoipa::path(
    post,
    path = "/v1/user/credentials",
    tag = "users",
    operation_id = "set_own_password",
    summary = "The caller changes its own password",
    request_body = regkeep_domain::wire::AccessCredential,
    responses((status = 200, description = "The new credential, masked", body = regkeep_domain::wire::CredentialSummary))
)]
pub async fn set_own_password(
    State(state): State<AppState>,
    auth: Authenticated,
    JsonBody(credential): JsonBody<AccessCredential>,
) -> Result<Json<CredentialSummary>, ApiError> {
    let (account, user) = (
        auth.caller.account.to_string(),
        auth.caller.user.to_string(),
    );
    let record = change_password(&state, &auth, &account, &user, credential).await?;
    Ok(Json(password_summary(&record)))
}

/// `GET /v1/accounts/{a}/users/{u}/credentials`.
#[utoipa::path(
    get,
    path = "/v1/accounts/{account}/users/{user}/credentials",
    tag = "users",
    operation_id = "list_credentials",
    summary = "A user's credentials, masked (admins only)",
    params(("account" = String, Path, description = "An account name", pattern = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"), ("user" = String, Path, description = "A user name", pattern = "^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")),
    responses((status = 200, description = "OK", body = Vec<regkeep_domain::wire::CredentialSummary>), (status = 404, description = "No such account or user", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn list_credentials(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((account, user)): Path<(String, String)>,
) -> Result<Json<Vec<CredentialSummary>>, ApiError> {
    let summaries = state
        .engine
        .accounts()
        .list_credentials(&auth.caller, &account, &user)
        .await?;
    Ok(Json(summaries.iter().map(credential_wire).collect()))
}

/// Which credential `DELETE …/credentials` removes (Anchore's parameter; `password` is the only
/// type). Unknown query parameters are ignored.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CredentialQuery {
    /// `password` (the only type).
    #[param(required = true, pattern = "^password$")]
    credential_type: Option<String>,
}

/// `DELETE /v1/accounts/{a}/users/{u}/credentials?credential_type=password`: the user can no
/// longer log in until given a new password.
#[utoipa::path(
    delete,
    path = "/v1/accounts/{account}/users/{user}/credentials",
    tag = "users",
    operation_id = "delete_credential",
    summary = "Removes a user's password (admins only)",
    params(("account" = String, Path, description = "An account name", pattern = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"), ("user" = String, Path, description = "A user name", pattern = "^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$"), CredentialQuery),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such account, user or credential", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn delete_credential(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((account, user)): Path<(String, String)>,
    Query(query): Query<CredentialQuery>,
) -> Result<StatusCode, ApiError> {
    let Some(credential_type) = query.credential_type else {
        return Err(ApiError::bad_request(
            "credential_type is missing: add ?credential_type=password",
        ));
    };
    state
        .engine
        .accounts()
        .delete_credential(&auth.caller, &account, &user, &credential_type)
        .await?;
    audit::change(
        &auth.caller,
        "user.password_deleted",
        &auth.account,
        &format!("{account}/{user}"),
    );
    Ok(StatusCode::NO_CONTENT)
}

fn credential_wire(summary: &regkeep_engine::accounts::CredentialSummary) -> CredentialSummary {
    CredentialSummary {
        credential_type: summary.credential_type.to_owned(),
        value: MASKED_CREDENTIAL.into(),
        created_at: summary.created_at,
    }
}

fn account_wire(record: &AccountRecord) -> Account {
    Account {
        name: record.name.to_string(),
        email: record.email.clone(),
        account_type: record.account_type.as_str().to_owned(),
        state: record.state.as_str().to_owned(),
        created_at: record.created_at,
        last_updated: record.last_updated,
    }
}

fn user_wire(record: &UserRecord) -> User {
    User {
        username: record.username.to_string(),
        user_type: record.user_type.clone(),
        source: record.source.clone(),
        created_at: record.created_at,
        last_updated: record.last_updated,
    }
}
