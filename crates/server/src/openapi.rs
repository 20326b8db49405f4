//! The OpenAPI 3.1 document (`GET /v1/openapi.json`), generated from the code: each handler's
//! `#[utoipa::path]` (method, path, parameters, request body, its own answers) and the wire types'
//! `ToSchema` (regkeep_domain::wire). What every operation shares is added here, by rule, so no
//! handler can forget it:
//!
//! - security: HTTP Basic (people) or `Bearer rk_…` (API keys), except the public probes and
//!   documents ([`PUBLIC`]); authenticated operations take `x-anchore-account` (an admin acts in
//!   another account) except the API root, which ignores it;
//! - answers: every operation can answer 500 (a bug, logged) and 503 (the database is busy or
//!   cannot be written); an authenticated one 401, 403 and 429; one with parameters or a body 400;
//!   one with a body 408, 413 and 415; a write (POST, PUT, DELETE) 507 (the database's disk is
//!   full). Each error answer is `ErrorBody`.
//!
//! The routes served and the operations documented are compared by a test (below): a route
//! added without a documented operation, or documented without being served, fails it.

use std::sync::LazyLock;

use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::routes::{accounts, api_keys, content, credentials, images, registries, system, watch};

/// Operations that need no credentials (probes, versions, the documents).
const PUBLIC: &[&str] = &["health", "ready", "version", "swagger", "openapi"];

/// Paths served twice (Anchore's clients use both): (alias, documented path, operation ID).
const ALIASES: &[(&str, &str, &str)] = &[
    ("/v1/health", "/health", "health_v1"),
    ("/v1/ready", "/ready", "ready_v1"),
    ("/v1/version", "/version", "version_v1"),
    ("/v1/", "/v1", "api_root_slash"),
    ("/v1/swagger.json", "/swagger.json", "swagger_v1"),
];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "regkeep",
        description = "regkeep's HTTP API: Anchore Engine's registry, account, user, image, subscription, event and system routes (anchore-cli 0.9.3 works against it unmodified), and regkeep's own: registry checks, the content pull-through, API keys and the credential handout. Errors are always `{message, httpcode, detail}`; `detail.reason`, where present, is the machine-readable cause."
    ),
    paths(
        system::health, system::ready, system::version, system::root, system::swagger,
        system::openapi, system::status, system::system,
        registries::list, registries::add, registries::get, registries::update,
        registries::delete, registries::check,
        images::add, images::list, images::get, images::delete, images::get_by_id,
        images::delete_by_id,
        content::get,
        watch::add, watch::list, watch::types, watch::get, watch::update, watch::delete,
        watch::poll,
        watch::list_events, watch::delete_events, watch::event_types, watch::get_event,
        watch::delete_event,
        accounts::own_account, accounts::own_user, accounts::list, accounts::get,
        accounts::create, accounts::set_state, accounts::delete, accounts::list_users,
        accounts::get_user, accounts::create_user, accounts::delete_user,
        accounts::list_credentials, accounts::set_password, accounts::delete_credential,
        accounts::own_credentials, accounts::set_own_password,
        api_keys::list, api_keys::create, api_keys::revoke,
        credentials::resolve,
    ),
    components(schemas(regkeep_domain::wire::ErrorBody)),
    modifiers(&Shared),
)]
struct ApiDoc;

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The document as JSON, made once.
pub fn document_json() -> &'static [u8] {
    static JSON: LazyLock<Vec<u8>> = LazyLock::new(|| {
        serde_json::to_vec(&document()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the OpenAPI document could not be written as JSON");
            b"{}".to_vec()
        })
    });
    &JSON
}

/// The shared parts: security, the account header, the error answers, the aliases.
struct Shared;

/// A shared error answer: (status, component name, description).
const SHARED_ERRORS: &[(u16, &str, &str)] = &[
    (400, "BadRequest", "The request is malformed (a parameter or the body): `message` says what to fix"),
    (401, "Unauthorized", "No credentials, or wrong ones (or an expired or revoked API key)"),
    (403, "Forbidden", "Not allowed: not an admin, the account is disabled, or the API key's scope does not cover this (`detail.reason`)"),
    (404, "NotFound", "The account named in `x-anchore-account` does not exist"),
    (408, "RequestTimeout", "The body did not arrive in time"),
    (413, "PayloadTooLarge", "The body is larger than the server takes (`max_body_bytes`)"),
    (415, "UnsupportedMediaType", "The body is not `application/json`"),
    (429, "TooManyRequests", "Too many failed logins from this address: wait `Retry-After` seconds"),
    (500, "InternalError", "A bug: the cause is in the server's log, never in the answer"),
    (503, "Unavailable", "The database is busy or cannot be written now: retry after `Retry-After` seconds"),
    (507, "StorageFull", "The database's disk is full"),
];

impl Modify for Shared {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("rk_<16 hex>_<43 base64url>")
                    .build(),
            ),
        );
        for (status, name, description) in SHARED_ERRORS {
            let response = ResponseBuilder::new()
                .description(format!("{status}: {description}"))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build();
            components
                .responses
                .insert((*name).to_owned(), RefOr::T(response));
        }
        doc.security = Some(vec![
            SecurityRequirement::new("basic", Vec::<String>::new()),
            SecurityRequirement::new("api_key", Vec::<String>::new()),
        ]);
        for (_, item) in doc.paths.paths.iter_mut() {
            for (verb, operation) in operations_mut(item) {
                shared_parts(verb, operation);
            }
        }
        for (alias, documented, operation_id) in ALIASES {
            if let Some(mut item) = doc.paths.paths.get(*documented).cloned() {
                for (_, operation) in operations_mut(&mut item) {
                    operation.operation_id = Some((*operation_id).to_owned());
                }
                doc.paths.paths.insert((*alias).to_owned(), item);
            }
        }
    }
}

fn shared_parts(verb: &'static str, operation: &mut Operation) {
    let id = operation.operation_id.clone().unwrap_or_default();
    let public = PUBLIC.contains(&id.as_str());
    if public {
        operation.security = Some(Vec::new());
    } else if id != "api_root" {
        operation
            .parameters
            .get_or_insert_with(Vec::new)
            .push(account_header());
    }
    let has_parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_body = operation.request_body.is_some();
    let mut shared = vec![500, 503];
    if !public {
        shared.extend([401, 403, 429]);
    }
    if has_parameters || has_body {
        shared.push(400);
    }
    if !public && id != "api_root" {
        // The account named in x-anchore-account does not exist.
        shared.push(404);
    }
    if has_body {
        shared.extend([408, 413, 415]);
    }
    if verb != "get" {
        shared.push(507);
    }
    for (status, name, _) in SHARED_ERRORS {
        if shared.contains(status) {
            operation
                .responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))));
        }
    }
}

fn account_header() -> Parameter {
    ParameterBuilder::new()
        .name("x-anchore-account")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "An admin acts in this account (Anchore's header); others may name only their own. Empty is the same as absent.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                // Empty is the same as absent.
                .pattern(Some("^([A-Za-z0-9][A-Za-z0-9._@-]{0,63})?$")),
        ))
        .build()
}

/// A path's operations, with their methods as the document writes them.
fn operations_mut(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("post", item.post.as_mut()),
        ("put", item.put.as_mut()),
        ("delete", item.delete.as_mut()),
        ("patch", item.patch.as_mut()),
        ("head", item.head.as_mut()),
        ("options", item.options.as_mut()),
        ("trace", item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(verb, op)| op.map(|op| (verb, op)))
    .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn documented(doc: &mut utoipa::openapi::OpenApi) -> BTreeSet<(String, String)> {
        doc.paths
            .paths
            .iter_mut()
            .flat_map(|(path, item)| {
                operations_mut(item)
                    .into_iter()
                    .map(|(verb, _)| (verb.to_owned(), path.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn every_route_served_is_documented_and_every_documented_operation_is_served() {
        let served: BTreeSet<(String, String)> = crate::routes::routes()
            .served()
            .iter()
            .map(|(verb, path)| (verb.as_str().to_owned(), (*path).to_owned()))
            .collect();
        let documented = documented(&mut document());
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let unserved: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty() && unserved.is_empty(),
            "served without a documented operation: {undocumented:?}; documented but not served: {unserved:?}"
        );
        assert!(served.len() >= 50, "{} routes", served.len());
    }

    #[test]
    fn every_operation_is_named_once_answers_json_errors_and_declares_its_path_parameters() {
        let mut doc = document();
        let mut ids = BTreeSet::new();
        for (path, item) in doc.paths.paths.iter_mut() {
            for (verb, op) in operations_mut(item) {
                let id = op.operation_id.clone().unwrap_or_default();
                assert!(!id.is_empty(), "{verb} {path} has no operation ID");
                assert!(ids.insert(id.clone()), "operation ID {id} is used twice");
                let codes: Vec<&String> = op.responses.responses.keys().collect();
                assert!(
                    codes.iter().any(|c| c.starts_with('2')),
                    "{verb} {path}: no success answer"
                );
                for needed in ["500", "503"] {
                    assert!(
                        codes.iter().any(|c| *c == needed),
                        "{verb} {path}: no {needed}"
                    );
                }
                if id != "get_content" {
                    for (code, response) in &op.responses.responses {
                        if let RefOr::T(response) = response {
                            for media_type in response.content.keys() {
                                assert_eq!(
                                    media_type, "application/json",
                                    "{verb} {path} {code}: every answer but content is JSON"
                                );
                            }
                        }
                    }
                }
                let public = op.security.as_ref().is_some_and(|s| s.is_empty());
                assert_eq!(
                    !public,
                    codes.iter().any(|c| *c == "401"),
                    "{verb} {path}: 401 documented exactly when credentials are needed"
                );
                let declared: BTreeSet<String> = op
                    .parameters
                    .iter()
                    .flatten()
                    .filter(|p| p.parameter_in == ParameterIn::Path)
                    .map(|p| p.name.clone())
                    .collect();
                let in_template: BTreeSet<String> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                    .map(str::to_owned)
                    .collect();
                assert_eq!(declared, in_template, "{verb} {path}: path parameters");
            }
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_schema_it_refers_to() {
        let json: serde_json::Value = serde_json::from_slice(document_json()).unwrap();
        assert!(
            json["openapi"].as_str().unwrap().starts_with("3.1"),
            "{}",
            json["openapi"]
        );
        let text = json.to_string();
        let schemas = json["components"]["schemas"].as_object().unwrap();
        let responses = json["components"]["responses"].as_object().unwrap();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().unwrap();
            if let Some(name) = target.strip_prefix("#/components/schemas/") {
                assert!(
                    schemas.contains_key(name),
                    "{target} is referred to, not defined"
                );
            } else if let Some(name) = target.strip_prefix("#/components/responses/") {
                assert!(
                    responses.contains_key(name),
                    "{target} is referred to, not defined"
                );
            } else {
                panic!("unexpected reference {target}");
            }
        }
        // No secret-bearing type is an answer except the handout and the key's creation.
        for schema in [
            "RegistryConfiguration",
            "User",
            "CredentialSummary",
            "Account",
        ] {
            let fields: Vec<&String> = schemas[schema]["properties"]
                .as_object()
                .unwrap()
                .keys()
                .collect();
            assert!(
                fields
                    .iter()
                    .all(|f| !f.contains("pass") && !f.contains("secret")),
                "{schema}: {fields:?}"
            );
        }
    }
}
