//! The JSON bodies of the HTTP API (docs/design.md §1 and 2), shared by the server's handlers and the CLI
//! client so the two cannot drift apart. Field names are Anchore's, exactly.
//!
//! Requests arrive as loosely typed as Anchore's clients send them (strings, optional fields) and
//! are parsed into domain types by the engine, which answers bad input with a message that says
//! what to fix. No response type holds a secret.
//!
//! Each type derives `ToSchema`: the server's OpenAPI document (`GET /v1/openapi.json`) describes
//! these same types, so the document cannot drift from what is sent.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::Timestamp;
use crate::secret::Secret;

/// `POST /v1/registries` and `PUT /v1/registries/{registry}` (Anchore's
/// `RegistryConfigurationRequest`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RegistryConfigurationRequest {
    pub registry: String,
    pub registry_user: String,
    /// Required to add a registry. To update one, absent (or empty) keeps the stored password
    /// (anchore-cli always sends it; regkeep's CLI sends it only when it changes).
    #[serde(default, skip_serializing_if = "Secret::is_empty")]
    pub registry_pass: Secret,
    /// `docker_v2` or `awsecr`; absent (or null) means guessed from the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_type: Option<String>,
    /// TLS verification; absent means true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_verify: Option<bool>,
    /// A display name; absent means the registry string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_name: Option<String>,
}

/// A stored registry as the API shows it (Anchore's `RegistryConfiguration`, plus regkeep's own
/// state fields). Never carries the password or a token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegistryConfiguration {
    pub registry: String,
    pub registry_name: String,
    pub registry_user: String,
    pub registry_type: String,
    pub registry_verify: bool,
    #[serde(rename = "userId")]
    pub user_id: String,
    pub created_at: Timestamp,
    pub last_updated: Timestamp,
    /// When the credentials were last checked against the registry; null when added with
    /// `validate=false` and never checked since.
    #[serde(default)]
    pub last_validated: Option<Timestamp>,
    /// For `awsecr` registries: when the current ECR token expires (never the token itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expires_at: Option<Timestamp>,
    /// For `awsecr` registries: when the token was last renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_renewed_at: Option<Timestamp>,
    /// For `awsecr` registries: the last renewal's error (AWS's message), null after a success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_last_error: Option<String>,
    /// The registries file that declares this entry (absent: made through the API). Only the
    /// file changes or removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_in: Option<String>,
    /// Why the file's entry could not be applied as written (absent when it was).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declaration_error: Option<String>,
}

/// `POST /v1/registries/{registry}/check`: what a check found (never the credential).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RegistryCheck {
    pub registry: String,
    /// Always true in a 200 answer (a failed check answers an error).
    pub ok: bool,
    /// Whether the registry was contacted (false with `?login=false`).
    pub logged_in: bool,
    /// When the login happened (absent with `?login=false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<Timestamp>,
    /// Until when the credential may be used (ECR tokens); null for stored passwords.
    pub token_usable_until: Option<Timestamp>,
    /// The registry refused the first token and a renewed one worked (absent with
    /// `?login=false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed_after_refusal: Option<bool>,
}

/// `GET /health` and `GET /ready`: `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProbeStatus {
    pub status: String,
}

/// Every error answer: `{"message", "httpcode", "detail"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub message: String,
    pub httpcode: u16,
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// An account record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Account {
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(rename = "type")]
    pub account_type: String,
    pub state: String,
    pub created_at: Timestamp,
    pub last_updated: Timestamp,
}

/// `POST /v1/accounts`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountCreationRequest {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// `PUT /v1/accounts/{account}/state`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AccountStatus {
    pub state: String,
}

/// A user record (never its password).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub username: String,
    #[serde(rename = "type")]
    pub user_type: String,
    pub source: Option<String>,
    pub created_at: Timestamp,
    pub last_updated: Timestamp,
}

/// `POST /v1/accounts/{account}/users`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct UserCreationRequest {
    #[schema(pattern = "^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")]
    pub username: String,
    pub password: Secret,
}

/// `POST /v1/accounts/{account}/users/{user}/credentials`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AccessCredential {
    /// `password` (the only type).
    #[serde(rename = "type")]
    #[schema(pattern = "^password$")]
    pub credential_type: String,
    pub value: Secret,
}

/// `GET /version`.
/// A credential a user has, as listed (Anchore's `AccessCredential` answer): its type, a
/// masked value (always [`MASKED_CREDENTIAL`], never derived from the secret), and when it
/// was set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CredentialSummary {
    #[serde(rename = "type")]
    pub credential_type: String,
    pub value: String,
    pub created_at: Timestamp,
}

/// What a listed credential shows for its value.
pub const MASKED_CREDENTIAL: &str = "********";

/// `GET /version` (Anchore's `ServiceVersion`): the service's version, the API's, and the
/// database schema's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Version {
    pub service: VersionOf,
    pub api: VersionOf,
    pub db: SchemaVersion,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VersionOf {
    pub version: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SchemaVersion {
    pub schema_version: String,
}

/// `GET /status` (Anchore's `StatusResponse`), also each part's `service_detail` in
/// [`SystemStatus`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatusResponse {
    pub available: bool,
    pub busy: bool,
    pub up: bool,
    pub message: String,
    pub version: String,
    pub db_version: String,
    pub detail: serde_json::Value,
}

/// One of regkeep's parts, as Anchore lists a service in `GET /system`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServiceStatus {
    pub servicename: String,
    pub hostid: String,
    pub base_url: String,
    pub status: bool,
    pub status_message: String,
    pub version: String,
    pub service_detail: StatusResponse,
}

/// `GET /system` (anchore-cli's `system status`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SystemStatus {
    pub service_states: Vec<ServiceStatus>,
}

/// One event type regkeep writes, in Anchore's `GET /event_types` tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventDescription {
    pub name: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub message: String,
    pub resource_type: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventSubcategory {
    pub name: String,
    pub description: String,
    pub events: Vec<EventDescription>,
}

/// A category of event types. Anchore's server answers `name`; its swagger names the field
/// `category`: both are given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventCategory {
    pub name: String,
    pub category: String,
    pub description: String,
    pub subcategories: Vec<EventSubcategory>,
}

/// `POST /v1/images` (Anchore's `ImageAnalysisRequest`, the parts regkeep uses).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ImageAddRequest {
    /// `host/repo:tag`, e.g. `registry.example.com/team/app:1.0` or `alpine`.
    pub tag: String,
    /// Pins the tag to this digest (`sha256:...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// `os/arch[/variant]` for multi-platform images; default `linux/amd64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// One way an image was reached (Anchore's `image_detail` entry).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ImageDetail {
    pub registry: String,
    pub repo: String,
    pub tag: Option<String>,
    pub fulltag: Option<String>,
    pub digest: String,
    pub fulldigest: String,
    #[serde(rename = "imageDigest")]
    pub image_digest: String,
    /// The config digest's hex (Anchore's image ID), the same in every entry of a record.
    #[serde(rename = "imageId")]
    pub image_id: String,
    #[serde(rename = "userId")]
    pub user_id: String,
    /// When the digest was first added under this tag.
    pub tag_detected_at: Timestamp,
    pub created_at: Timestamp,
    pub last_updated: Timestamp,
}

/// An image record, in Anchore's shape (`AnchoreImage`) with what regkeep adds.
/// `resolution_status` says what regkeep did (`resolved`). regkeep does not analyse images: the
/// fields Anchore's clients read say so honestly (`analysis_status: not_analyzed`,
/// `analyzed_at: null`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ImageRecord {
    #[serde(rename = "imageDigest")]
    pub image_digest: String,
    /// What the tag pointed at when added (the index for a multi-platform image): the same as
    /// `imageDigest`, which regkeep records.
    #[serde(rename = "parentDigest")]
    pub parent_digest: String,
    #[serde(rename = "userId")]
    pub user_id: String,
    /// Always [`NOT_ANALYZED`].
    pub analysis_status: String,
    /// Always `active`.
    pub image_status: String,
    /// Always `docker`.
    pub image_type: String,
    /// Always null: regkeep does not analyse.
    pub analyzed_at: Option<Timestamp>,
    pub annotations: serde_json::Map<String, serde_json::Value>,
    /// Only in the answer to an add by digest whose tag points at another digest now: that one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_points_at: Option<String>,
    pub resolution_status: String,
    /// One entry per tag (and registry) the digest was added under.
    pub image_detail: Vec<ImageDetail>,
    pub media_type: String,
    pub manifest_digest: String,
    pub platform: String,
    pub config_digest: String,
    pub image_created: Option<String>,
    pub layer_count: i64,
    pub image_size: i64,
    pub resolved_at: Timestamp,
    pub created_at: Timestamp,
    pub last_updated: Timestamp,
}

/// `analysis_status` of every image record: regkeep records images, it does not analyse them.
pub const NOT_ANALYZED: &str = "not_analyzed";

/// `DELETE /v1/images/{digest}` and `DELETE /v1/images/by_id/{id}` (Anchore's
/// `DeleteImageResponse`; anchore-cli checks `status` is `deleting`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeleteImageResponse {
    pub digest: String,
    pub status: String,
    pub detail: Option<String>,
}

/// `POST /v1/subscriptions` (Anchore's `SubscriptionRequest`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionRequest {
    /// `tag_update` (the one type regkeep watches).
    #[schema(pattern = "^tag_update$")]
    pub subscription_type: String,
    /// For `tag_update`: the tag to watch, `host/repo:tag`.
    pub subscription_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_value: Option<String>,
    /// Absent means true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// `PUT /v1/subscriptions/{id}` (Anchore's `SubscriptionUpdate`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionUpdate {
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_value: Option<String>,
}

/// A subscription (Anchore's `Subscription`), with what the poller last saw.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Subscription {
    pub subscription_id: String,
    pub subscription_type: String,
    pub subscription_key: String,
    pub subscription_value: Option<String>,
    pub active: bool,
    #[serde(rename = "userId")]
    pub user_id: String,
    /// The digest the tag pointed at when last polled.
    pub last_digest: Option<String>,
    pub last_polled_at: Option<Timestamp>,
    /// Why the last poll failed (none when it succeeded).
    pub last_error: Option<String>,
    /// Polls failed in a row.
    pub failures: i64,
    pub next_poll_at: Timestamp,
    pub created_at: Timestamp,
    pub last_updated: Timestamp,
}

/// Where an event is about (Anchore's event `resource`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EventResource {
    pub user_id: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub id: String,
}

/// Who generated an event (Anchore's event `source`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EventSource {
    pub servicename: String,
    pub hostid: String,
    pub request_id: Option<String>,
}

/// The event itself (Anchore's event body).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EventBody {
    #[serde(rename = "type")]
    pub event_type: String,
    /// `INFO` or `ERROR`.
    pub level: String,
    pub message: String,
    pub details: serde_json::Value,
    pub timestamp: Timestamp,
    pub resource: EventResource,
    pub source: EventSource,
}

/// One entry of `GET /v1/events` (Anchore's `EventResponse`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EventResponse {
    pub generated_uuid: String,
    pub created_at: Timestamp,
    pub event: EventBody,
}

/// `GET /v1/events` (Anchore's `EventsList`).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct EventsList {
    pub results: Vec<EventResponse>,
    pub next_page: bool,
    pub item_count: usize,
    /// This page's number (from 1); anchore-cli's `event list --all` asks for the next.
    #[serde(default = "first_page")]
    pub page: i64,
}

fn first_page() -> i64 {
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_secrets() {
        let registry: RegistryConfigurationRequest = serde_json::from_str(
            r#"{"registry":"r.example.com","registry_user":"u","registry_pass":"debug-secret-1"}"#,
        )
        .unwrap();
        let user = UserCreationRequest {
            username: "u".into(),
            password: Secret::new("debug-secret-2"),
        };
        let credential = AccessCredential {
            credential_type: "password".into(),
            value: Secret::new("debug-secret-3"),
        };
        for shown in [
            format!("{registry:?}"),
            format!("{user:?}"),
            format!("{credential:?}"),
            format!("{registry:#?}"),
        ] {
            assert!(!shown.contains("debug-secret"), "{shown}");
        }
        // The request still carries the secret to the server.
        assert!(serde_json::to_string(&registry)
            .unwrap()
            .contains("debug-secret-1"));
    }

    #[test]
    fn registry_pass_accepts_numbers_as_text() {
        let r: RegistryConfigurationRequest = serde_json::from_str(
            r#"{"registry":"r","registry_user":"u","registry_pass":12345678}"#,
        )
        .unwrap();
        assert_eq!(r.registry_pass.expose(), "12345678");
        assert!(serde_json::from_str::<RegistryConfigurationRequest>(
            r#"{"registry":"r","registry_user":"u","registry_pass":true}"#
        )
        .is_err());
    }
}

/// `POST /v1/apikeys`: a key for machines. `scopes` from `credentials:read`, `registries:write`,
/// `read`; `expires_in` a lifetime such as `90d` (none: the key does not expire).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyCreationRequest {
    #[schema(min_items = 1)]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
}

/// An API key as listed (never the key itself; `key` only in the answer that made it).
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub key_id: String,
    pub account: String,
    pub created_by: String,
    pub description: String,
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
    /// The key, once: in the answer to its creation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
}

/// `POST /v1/credentials/resolve`: which credential is wanted, by image or by registry host.
#[derive(Clone, Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct CredentialRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
}

/// The credential handout's answer: the one answer that carries a secret.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CredentialHandout {
    /// The registry entry that serves the request (as registered: host, host/repo or a wildcard).
    pub registry: String,
    /// The host to present the credential to.
    pub host: String,
    /// What the entry covers: `host` (every repository of the host), `repository` (one) or
    /// `wildcard` (those under a prefix).
    pub scope: String,
    pub username: String,
    pub secret: Secret,
    /// Until when the secret may be used (ECR tokens); none for stored passwords.
    pub expires_at: Option<Timestamp>,
    pub registry_type: String,
}
