//! `/v1/subscriptions` (Anchore's paths and shapes: `tag_update` with `host/repo:tag`) and
//! `/v1/events` (Anchore's event list). The poller that fills the event log runs in the
//! background (see `Application::run_until_stopped`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use regkeep_domain::entities::{EventFilter, EventRecord, SubscriptionRecord};
use regkeep_domain::wire::{
    EventBody, EventCategory, EventDescription, EventResource, EventResponse, EventSource,
    EventSubcategory, EventsList, Subscription, SubscriptionRequest, SubscriptionUpdate,
};
use regkeep_domain::Timestamp;
use serde::Deserialize;

use crate::auth::Authenticated;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::AppState;

/// Most events one page holds.
const MAX_PAGE: i64 = 1000;

/// Filters of `GET /v1/subscriptions`. Unknown query parameters are ignored, as Anchore does.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionQuery {
    subscription_key: Option<String>,
    subscription_type: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/subscriptions",
    tag = "subscriptions",
    operation_id = "add_subscription",
    summary = "Watches a tag",
    request_body = regkeep_domain::wire::SubscriptionRequest,
    responses((status = 200, description = "The subscription", body = Vec<regkeep_domain::wire::Subscription>), (status = 409, description = "The account already watches the tag", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn add(
    State(state): State<AppState>,
    auth: Authenticated,
    JsonBody(request): JsonBody<SubscriptionRequest>,
) -> Result<Json<Vec<Subscription>>, ApiError> {
    let record = state
        .engine
        .watch()
        .add_subscription(&auth.account, &request)
        .await?;
    Ok(Json(vec![to_wire(&record)]))
}

#[utoipa::path(
    get,
    path = "/v1/subscriptions",
    tag = "subscriptions",
    operation_id = "list_subscriptions",
    summary = "The account's subscriptions",
    params(SubscriptionQuery),
    responses((status = 200, description = "OK", body = Vec<regkeep_domain::wire::Subscription>))
)]
pub async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
    Query(query): Query<SubscriptionQuery>,
) -> Result<Json<Vec<Subscription>>, ApiError> {
    let records = state
        .engine
        .watch()
        .list_subscriptions(&auth.account)
        .await?;
    // Keys are stored normalised (`alpine` is `docker.io/library/alpine:latest`): so is the query.
    let key = query.subscription_key.map(|k| {
        k.parse::<regkeep_domain::ImageReference>()
            .map_or(k, |i| i.to_string())
    });
    let query = SubscriptionQuery {
        subscription_key: key,
        subscription_type: query.subscription_type,
    };
    Ok(Json(
        records
            .iter()
            .filter(|r| {
                query
                    .subscription_key
                    .as_ref()
                    .is_none_or(|k| &r.subscription_key == k)
                    && query
                        .subscription_type
                        .as_ref()
                        .is_none_or(|t| &r.subscription_type == t)
            })
            .map(to_wire)
            .collect(),
    ))
}

/// `GET /v1/subscriptions/types`: the types regkeep watches.
#[utoipa::path(
    get,
    path = "/v1/subscriptions/types",
    tag = "subscriptions",
    operation_id = "subscription_types",
    summary = "The subscription types regkeep watches",
    responses((status = 200, description = "OK", body = Vec<String>))
)]
pub async fn types(_auth: Authenticated) -> Json<Vec<&'static str>> {
    Json(vec![regkeep_engine::tag_watch::TAG_UPDATE])
}

#[utoipa::path(
    get,
    path = "/v1/subscriptions/{id}",
    tag = "subscriptions",
    operation_id = "get_subscription",
    summary = "One subscription",
    params(("id" = String, Path, description = "A subscription ID")),
    responses((status = 200, description = "OK", body = Vec<regkeep_domain::wire::Subscription>), (status = 404, description = "No such subscription in the account", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn get(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Vec<Subscription>>, ApiError> {
    let record = state
        .engine
        .watch()
        .get_subscription(&auth.account, &id)
        .await?;
    Ok(Json(vec![to_wire(&record)]))
}

#[utoipa::path(
    put,
    path = "/v1/subscriptions/{id}",
    tag = "subscriptions",
    operation_id = "update_subscription",
    summary = "Activates or deactivates a subscription",
    params(("id" = String, Path, description = "A subscription ID")),
    request_body = regkeep_domain::wire::SubscriptionUpdate,
    responses((status = 200, description = "The subscription", body = Vec<regkeep_domain::wire::Subscription>), (status = 404, description = "No such subscription in the account", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn update(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<SubscriptionUpdate>,
) -> Result<Json<Vec<Subscription>>, ApiError> {
    let record = state
        .engine
        .watch()
        .set_subscription_active(&auth.account, &id, request.active)
        .await?;
    Ok(Json(vec![to_wire(&record)]))
}

/// `POST /v1/subscriptions/{id}/poll`: polls the tag now and answers the subscription after the
/// poll (its digest, or why it could not be had).
#[utoipa::path(
    post,
    path = "/v1/subscriptions/{id}/poll",
    tag = "subscriptions",
    operation_id = "poll_subscription",
    summary = "Polls a watched tag now and answers what it found",
    params(("id" = String, Path, description = "A subscription ID")),
    responses((status = 200, description = "The subscription after the poll (`last_digest`, `last_error`)", body = Vec<regkeep_domain::wire::Subscription>), (status = 404, description = "No such subscription in the account", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn poll(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Vec<Subscription>>, ApiError> {
    let record = state
        .engine
        .watch()
        .poll_subscription_now(&auth.account, &id)
        .await?;
    Ok(Json(vec![to_wire(&record)]))
}

/// `DELETE /v1/subscriptions/{id}`: 200 with `true`, as Anchore answers.
#[utoipa::path(
    delete,
    path = "/v1/subscriptions/{id}",
    tag = "subscriptions",
    operation_id = "delete_subscription",
    summary = "Stops watching",
    params(("id" = String, Path, description = "A subscription ID")),
    responses((status = 200, description = "Deleted (`true`, as Anchore answers)", body = bool, content_type = "application/json"), (status = 404, description = "No such subscription in the account", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn delete(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<bool>, ApiError> {
    state
        .engine
        .watch()
        .delete_subscription(&auth.account, &id)
        .await?;
    Ok(Json(true))
}

/// Who writes regkeep's events (`source.servicename` and `source.hostid` of every event).
const EVENT_SOURCE: &str = "regkeep";

/// `GET /v1/events` filters (Anchore's names). Unknown query parameters are ignored, as Anchore
/// does.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Events written by this service (regkeep's are `regkeep`).
    source_servicename: Option<String>,
    /// Events written on this host (regkeep's are `regkeep`).
    source_hostid: Option<String>,
    event_type: Option<String>,
    level: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    /// Events created at or after ([`Timestamp::parse_api`]'s formats).
    since: Option<String>,
    /// Events created before.
    before: Option<String>,
    /// 1-based.
    #[param(minimum = 1)]
    page: Option<i64>,
    /// Events per page (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    operation_id = "list_events",
    summary = "The account's events, newest first, a page at a time",
    params(EventQuery),
    responses((status = 200, description = "OK", body = regkeep_domain::wire::EventsList))
)]
pub async fn list_events(
    State(state): State<AppState>,
    auth: Authenticated,
    Query(query): Query<EventQuery>,
) -> Result<Json<EventsList>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let page = query.page.unwrap_or(1);
    if page < 1 {
        return Err(ApiError::new(StatusCode::BAD_REQUEST, "page starts at 1"));
    }
    let level = query.level.map(|l| l.to_ascii_uppercase());
    if let Some(l) = &level {
        if l != "INFO" && l != "ERROR" {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "level is INFO or ERROR",
            ));
        }
    }
    // Searched for in the database, whose text cannot hold U+0000 (PostgreSQL): refused as
    // the fields that store text are.
    for (name, value) in [
        ("event_type", &query.event_type),
        ("resource_type", &query.resource_type),
        ("resource_id", &query.resource_id),
    ] {
        if value
            .as_deref()
            .is_some_and(|v| v.chars().any(char::is_control))
        {
            return Err(ApiError::bad_request(format!(
                "{name} contains control characters: remove them"
            )));
        }
    }
    let filter = EventFilter {
        event_type: query.event_type,
        level,
        resource_type: query.resource_type,
        resource_id: query.resource_id,
        since: parse_time("since", query.since.as_deref())?,
        before: parse_time("before", query.before.as_deref())?,
        limit,
        offset: (page - 1).saturating_mul(limit),
    };
    // Every event is regkeep's own: a filter on another source matches none.
    let other_source = [&query.source_servicename, &query.source_hostid]
        .into_iter()
        .flatten()
        .any(|source| source != EVENT_SOURCE);
    if other_source {
        return Ok(Json(EventsList {
            results: Vec::new(),
            next_page: false,
            item_count: 0,
            page,
        }));
    }
    let (events, next_page) = state
        .engine
        .watch()
        .list_events(&auth.account, &filter)
        .await?;
    Ok(Json(EventsList {
        item_count: events.len(),
        results: events.iter().map(event_to_wire).collect(),
        next_page,
        page,
    }))
}

/// `DELETE /v1/events` filters. Unknown query parameters are ignored.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteEventsQuery {
    since: Option<String>,
    before: Option<String>,
}

/// `DELETE /v1/events[?since=...][&before=...]`: clears the account's event log (or the part
/// in the window), answering the ids deleted (anchore-cli counts them).
#[utoipa::path(
    delete,
    path = "/v1/events",
    tag = "events",
    operation_id = "delete_events",
    summary = "Clears the account's events (or those in a window)",
    params(DeleteEventsQuery),
    responses((status = 200, description = "The IDs deleted", body = Vec<String>))
)]
pub async fn delete_events(
    State(state): State<AppState>,
    auth: Authenticated,
    Query(query): Query<DeleteEventsQuery>,
) -> Result<Json<Vec<String>>, ApiError> {
    let since = parse_time("since", query.since.as_deref())?;
    let before = parse_time("before", query.before.as_deref())?;
    Ok(Json(
        state
            .engine
            .watch()
            .delete_events(&auth.account, since, before)
            .await?,
    ))
}

/// `GET /v1/event_types`: the event types regkeep writes, in Anchore's tree (category, then
/// subcategory, from the type's first two parts).
#[utoipa::path(
    get,
    path = "/v1/event_types",
    tag = "events",
    operation_id = "event_types",
    summary = "The event types regkeep writes",
    responses((status = 200, description = "OK", body = Vec<regkeep_domain::wire::EventCategory>))
)]
pub async fn event_types(_auth: Authenticated) -> Json<Vec<EventCategory>> {
    let mut categories: Vec<EventCategory> = Vec::new();
    for kind in regkeep_engine::tag_watch::EVENT_TYPES {
        let mut parts = kind.event_type.splitn(3, '.');
        let (Some(category), Some(subcategory), Some(name)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let at = match categories.iter().position(|c| c.name == category) {
            Some(at) => at,
            None => {
                categories.push(EventCategory {
                    name: category.into(),
                    category: category.into(),
                    description: category_description(category).into(),
                    subcategories: Vec::new(),
                });
                categories.len() - 1
            }
        };
        let subcategories = &mut categories[at].subcategories;
        let sub = match subcategories.iter().position(|s| s.name == subcategory) {
            Some(sub) => sub,
            None => {
                subcategories.push(EventSubcategory {
                    name: subcategory.into(),
                    description: subcategory_description(subcategory).into(),
                    events: Vec::new(),
                });
                subcategories.len() - 1
            }
        };
        subcategories[sub].events.push(EventDescription {
            name: name.into(),
            event_type: kind.event_type.into(),
            message: kind.message.into(),
            resource_type: kind.resource_type.into(),
        });
    }
    categories.sort_by(|a, b| a.name.cmp(&b.name));
    for category in &mut categories {
        category.subcategories.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Json(categories)
}

fn category_description(category: &str) -> &'static str {
    match category {
        "user" => "Events of interest to a user, for people and automation",
        "system" => "Events of the system's own work (background polls and lookups)",
        _ => "",
    }
}

fn subcategory_description(subcategory: &str) -> &'static str {
    match subcategory {
        "checks" => "Events from checks on watched resources (tag watching)",
        "image_analysis" => "Events from looking up images in their registries",
        _ => "",
    }
}

/// `GET /v1/events/{id}`: one event, by its `generated_uuid`.
#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    tag = "events",
    operation_id = "get_event",
    summary = "One event",
    params(("id" = String, Path, description = "An event ID (`generated_uuid`)")),
    responses((status = 200, description = "OK", body = regkeep_domain::wire::EventResponse), (status = 404, description = "No such event in the account", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn get_event(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<EventResponse>, ApiError> {
    let event = state.engine.watch().get_event(&auth.account, &id).await?;
    Ok(Json(event_to_wire(&event)))
}

/// `DELETE /v1/events/{id}`.
#[utoipa::path(
    delete,
    path = "/v1/events/{id}",
    tag = "events",
    operation_id = "delete_event",
    summary = "Deletes one event",
    params(("id" = String, Path, description = "An event ID (`generated_uuid`)")),
    responses((status = 200, description = "Deleted (no body)"), (status = 404, description = "No such event in the account", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn delete_event(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .engine
        .watch()
        .delete_event(&auth.account, &id)
        .await?;
    Ok(StatusCode::OK)
}

/// A time query parameter, in the formats Anchore takes ([`Timestamp::parse_api`]).
fn parse_time(name: &str, value: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    value
        .filter(|v| !v.trim().is_empty())
        .map(|v| {
            Timestamp::parse_api(v).ok_or_else(|| {
                let shown = regkeep_domain::untrusted_text::sanitize(v, 60);
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "{name} `{shown}` is not a time: give RFC 3339 (2026-11-29T03:00:00Z) or `2026-11-29 03:00:00` (UTC)"
                    ),
                )
            })
        })
        .transpose()
}

fn to_wire(r: &SubscriptionRecord) -> Subscription {
    Subscription {
        subscription_id: r.subscription_id.clone(),
        subscription_type: r.subscription_type.clone(),
        subscription_key: r.subscription_key.clone(),
        subscription_value: r.subscription_value.clone(),
        active: r.active,
        user_id: r.account.to_string(),
        last_digest: r.last_digest.as_ref().map(ToString::to_string),
        last_polled_at: r.last_polled_at,
        last_error: r.last_error.clone(),
        failures: r.failures,
        next_poll_at: r.next_poll_at,
        created_at: r.created_at,
        last_updated: r.last_updated,
    }
}

fn event_to_wire(e: &EventRecord) -> EventResponse {
    EventResponse {
        generated_uuid: e.generated_uuid.clone(),
        created_at: e.created_at,
        event: EventBody {
            event_type: e.event_type.clone(),
            level: e.level.clone(),
            message: e.message.clone(),
            details: serde_json::from_str(&e.details).unwrap_or(serde_json::Value::Null),
            timestamp: e.created_at,
            resource: EventResource {
                user_id: e.account.to_string(),
                resource_type: e.resource_type.clone(),
                id: e.resource_id.clone(),
            },
            source: EventSource {
                servicename: EVENT_SOURCE.into(),
                hostid: EVENT_SOURCE.into(),
                request_id: None,
            },
        },
    }
}
