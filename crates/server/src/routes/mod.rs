//! The HTTP routes: [`system`] (`/health`, `/version`, `GET /v1`), [`registries`]
//! (`/v1/registries`), [`accounts`] (`/v1/account`, `/v1/user`, `/v1/accounts/...`), [`images`]
//! (`/v1/images`), [`content`] (`/v1/content/...`, the pull-through), [`watch`]
//! (`/v1/subscriptions`, `/v1/events`), [`api_keys`] (`/v1/apikeys`), [`credentials`]
//! (`/v1/credentials/resolve`, the handout).

pub mod accounts;
pub mod api_keys;
pub mod content;
pub mod credentials;
pub mod images;
pub mod registries;
pub mod system;
pub mod watch;

use axum::handler::Handler;
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;

use crate::AppState;

/// Every route of the API, with every error answer JSON: the JSON layer wraps the whole routed
/// service (not each route), because axum adds a 405's `Allow` header only after a route's own
/// layers have run.
pub fn router(state: AppState) -> Router {
    let mut routed = routes().into_router();
    if let Some(http_metrics) = state.http_metrics.clone() {
        routed = routed.route_layer(axum::middleware::from_fn_with_state(
            http_metrics,
            crate::metrics::track,
        ));
    }
    let routed = routed.with_state(state);
    Router::new()
        .fallback_service(routed)
        .layer(axum::middleware::map_response(crate::error::json_errors))
        // A handler that panics answers 500 (JSON, no panic text) instead of dropping the
        // connection; the panic itself is logged by the hook `telemetry::init` installs.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                axum::response::IntoResponse::into_response(crate::error::ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error: the server logged the cause; try again, and report it if it persists",
                ))
            },
        ))
}

/// The API's routes, as served (axum) and as documented (the OpenAPI document's paths).
pub fn routes() -> Routes {
    use Verb::{Delete, Get, Post, Put};
    Routes::default()
        .add(Get, "/health", system::health)
        .add(Get, "/v1/health", system::health)
        .add(Get, "/ready", system::ready)
        .add(Get, "/v1/ready", system::ready)
        .add(Get, "/version", system::version)
        .add(Get, "/v1/version", system::version)
        .add(Get, "/v1", system::root)
        .add(Get, "/v1/", system::root)
        .add(Get, "/swagger.json", system::swagger)
        .add(Get, "/v1/swagger.json", system::swagger)
        .add(Get, "/v1/openapi.json", system::openapi)
        .add(Get, "/v1/system", system::system)
        .add(Get, "/v1/status", system::status)
        .add(Get, "/v1/event_types", watch::event_types)
        .add(Get, "/v1/registries", registries::list)
        .add(Post, "/v1/registries", registries::add)
        // A registry name may hold slashes (`host/repository`): axum matches the rest of the
        // path, the document names the two shapes it serves.
        .add_as(
            Get,
            "/v1/registries/{*registry}",
            "/v1/registries/{registry}",
            registries::get,
        )
        .add_as(
            Put,
            "/v1/registries/{*registry}",
            "/v1/registries/{registry}",
            registries::update,
        )
        .add_as(
            Delete,
            "/v1/registries/{*registry}",
            "/v1/registries/{registry}",
            registries::delete,
        )
        .add_as(
            Post,
            "/v1/registries/{*registry}",
            "/v1/registries/{registry}/check",
            registries::check,
        )
        .other_methods("/v1/registries/{*registry}", registries::other_method)
        .add(Get, "/v1/images", images::list)
        .add(Post, "/v1/images", images::add)
        .add(Get, "/v1/images/{digest}", images::get)
        .add(Delete, "/v1/images/{digest}", images::delete)
        .add(Get, "/v1/images/by_id/{image_id}", images::get_by_id)
        .add(Delete, "/v1/images/by_id/{image_id}", images::delete_by_id)
        .add_as(
            Get,
            "/v1/content/{*path}",
            "/v1/content/{path}",
            content::get,
        )
        .add(Get, "/v1/subscriptions", watch::list)
        .add(Post, "/v1/subscriptions", watch::add)
        .add(Get, "/v1/subscriptions/types", watch::types)
        .add(Get, "/v1/subscriptions/{id}", watch::get)
        .add(Put, "/v1/subscriptions/{id}", watch::update)
        .add(Delete, "/v1/subscriptions/{id}", watch::delete)
        .add(Post, "/v1/subscriptions/{id}/poll", watch::poll)
        .add(Get, "/v1/events", watch::list_events)
        .add(Delete, "/v1/events", watch::delete_events)
        .add(Get, "/v1/events/{id}", watch::get_event)
        .add(Delete, "/v1/events/{id}", watch::delete_event)
        .add(Get, "/v1/account", accounts::own_account)
        .add(Get, "/v1/user", accounts::own_user)
        .add(Get, "/v1/accounts", accounts::list)
        .add(Post, "/v1/accounts", accounts::create)
        .add(Get, "/v1/accounts/{account}", accounts::get)
        .add(Delete, "/v1/accounts/{account}", accounts::delete)
        .add(Put, "/v1/accounts/{account}/state", accounts::set_state)
        .add(Get, "/v1/accounts/{account}/users", accounts::list_users)
        .add(Post, "/v1/accounts/{account}/users", accounts::create_user)
        .add(
            Get,
            "/v1/accounts/{account}/users/{user}",
            accounts::get_user,
        )
        .add(
            Delete,
            "/v1/accounts/{account}/users/{user}",
            accounts::delete_user,
        )
        .add(
            Get,
            "/v1/accounts/{account}/users/{user}/credentials",
            accounts::list_credentials,
        )
        .add(
            Post,
            "/v1/accounts/{account}/users/{user}/credentials",
            accounts::set_password,
        )
        .add(
            Delete,
            "/v1/accounts/{account}/users/{user}/credentials",
            accounts::delete_credential,
        )
        .add(Get, "/v1/user/credentials", accounts::own_credentials)
        .add(Post, "/v1/user/credentials", accounts::set_own_password)
        .add(Get, "/v1/apikeys", api_keys::list)
        .add(Post, "/v1/apikeys", api_keys::create)
        .add(Delete, "/v1/apikeys/{key_id}", api_keys::revoke)
        .add(Post, "/v1/credentials/resolve", credentials::resolve)
}

/// The HTTP methods the API uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verb {
    Get,
    Post,
    Put,
    Delete,
}

impl Verb {
    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
            Verb::Delete => MethodFilter::DELETE,
        }
    }

    /// As the OpenAPI document writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Put => "put",
            Verb::Delete => "delete",
        }
    }
}

/// Every route is added through here, one method at a time, so what is served is also data:
/// [`Routes::served`] lists each (method, documented path), and a test requires the OpenAPI
/// document to describe exactly those (crate::openapi).
#[derive(Default)]
pub struct Routes {
    /// axum path → its methods, in the order first added.
    paths: Vec<(&'static str, MethodRouter<AppState>)>,
    served: Vec<(Verb, &'static str)>,
}

impl Routes {
    /// `verb` at `path`, documented under the same path.
    fn add<H, T>(self, verb: Verb, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add_as(verb, path, path, handler)
    }

    /// `verb` at axum's `path`, documented as `documented` (they differ where axum matches the
    /// rest of the path, `{*name}`, which OpenAPI has no way to write).
    fn add_as<H, T>(
        mut self,
        verb: Verb,
        path: &'static str,
        documented: &'static str,
        handler: H,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        match self.paths.iter_mut().find(|(p, _)| *p == path) {
            Some((_, methods)) => {
                *methods = std::mem::take(methods).on(verb.filter(), handler);
            }
            None => self
                .paths
                .push((path, MethodRouter::new().on(verb.filter(), handler))),
        }
        self.served.push((verb, documented));
        self
    }

    /// What answers the methods `path` does not serve (instead of axum's 405, whose `Allow`
    /// would list every method of the whole axum path).
    fn other_methods<H, T>(mut self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        if let Some((_, methods)) = self.paths.iter_mut().find(|(p, _)| *p == path) {
            *methods = std::mem::take(methods).fallback(handler);
        }
        self
    }

    /// Each (method, documented path) served.
    pub fn served(&self) -> &[(Verb, &'static str)] {
        &self.served
    }

    fn into_router(self) -> Router<AppState> {
        self.paths
            .into_iter()
            .fold(Router::new(), |router, (path, methods)| {
                router.route(path, methods)
            })
            .fallback(crate::error::unknown_route)
    }
}
