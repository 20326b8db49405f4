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

use axum::routing::{delete, get, post, put};
use axum::Router;

use crate::AppState;

/// Every route of the API, with every error answer JSON: the JSON layer wraps the whole routed
/// service (not each route), because axum adds a 405's `Allow` header only after a route's own
/// layers have run.
pub fn router(state: AppState) -> Router {
    let mut routed = routes();
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

fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(system::health))
        .route("/v1/health", get(system::health))
        .route("/ready", get(system::ready))
        .route("/v1/ready", get(system::ready))
        .route("/version", get(system::version))
        .route("/v1/version", get(system::version))
        .route("/v1", get(system::root))
        .route("/swagger.json", get(system::swagger))
        .route("/v1/swagger.json", get(system::swagger))
        .route("/v1/system", get(system::system))
        .route("/v1/status", get(system::status))
        .route("/v1/event_types", get(watch::event_types))
        .route("/v1/", get(system::root))
        .route(
            "/v1/registries",
            get(registries::list).post(registries::add),
        )
        .route(
            "/v1/registries/{*registry}",
            get(registries::get)
                .put(registries::update)
                .delete(registries::delete)
                .post(registries::check),
        )
        .route("/v1/images", get(images::list).post(images::add))
        .route(
            "/v1/images/{digest}",
            get(images::get).delete(images::delete),
        )
        .route(
            "/v1/images/by_id/{image_id}",
            get(images::get_by_id).delete(images::delete_by_id),
        )
        .route("/v1/content/{*path}", get(content::get))
        .route("/v1/subscriptions", get(watch::list).post(watch::add))
        .route("/v1/subscriptions/types", get(watch::types))
        .route(
            "/v1/subscriptions/{id}",
            get(watch::get).put(watch::update).delete(watch::delete),
        )
        .route(
            "/v1/events",
            get(watch::list_events).delete(watch::delete_events),
        )
        .route(
            "/v1/events/{id}",
            get(watch::get_event).delete(watch::delete_event),
        )
        .route("/v1/account", get(accounts::own_account))
        .route("/v1/user", get(accounts::own_user))
        .route("/v1/accounts", get(accounts::list).post(accounts::create))
        .route(
            "/v1/accounts/{account}",
            get(accounts::get).delete(accounts::delete),
        )
        .route("/v1/accounts/{account}/state", put(accounts::set_state))
        .route(
            "/v1/accounts/{account}/users",
            get(accounts::list_users).post(accounts::create_user),
        )
        .route(
            "/v1/accounts/{account}/users/{user}",
            get(accounts::get_user).delete(accounts::delete_user),
        )
        .route(
            "/v1/accounts/{account}/users/{user}/credentials",
            get(accounts::list_credentials)
                .post(accounts::set_password)
                .delete(accounts::delete_credential),
        )
        .route(
            "/v1/user/credentials",
            get(accounts::own_credentials).post(accounts::set_own_password),
        )
        .route("/v1/apikeys", get(api_keys::list).post(api_keys::create))
        .route("/v1/apikeys/{key_id}", delete(api_keys::revoke))
        .route("/v1/credentials/resolve", post(credentials::resolve))
        .fallback(crate::error::unknown_route)
}
