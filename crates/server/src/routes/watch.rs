//! `/v1/subscriptions` (Anchore's paths and shapes: `tag_update` with `host/repo:tag`) and
//! `/v1/events` (Anchore's event list). The poller that fills the event log runs in the
//! background (see `Application::run_until_stopped`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use regkeep_domain::wire::{
    EventBody, EventResource, EventResponse, EventSource, EventsList, Subscription,
    SubscriptionRequest, SubscriptionUpdate,
};
use regkeep_domain::Timestamp;
use regkeep_store::{EventFilter, EventRecord, SubscriptionRecord};
use serde::Deserialize;

use crate::auth::Authenticated;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::AppState;

/// Most events one page holds.
const MAX_PAGE: i64 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionQuery {
    subscription_key: Option<String>,
    subscription_type: Option<String>,
}

pub async fn add(
    State(state): State<AppState>,
    auth: Authenticated,
    JsonBody(request): JsonBody<SubscriptionRequest>,
) -> Result<Json<Vec<Subscription>>, ApiError> {
    let record = state
        .engine
        .add_subscription(&auth.account, &request)
        .await?;
    Ok(Json(vec![to_wire(&record)]))
}

pub async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
    Query(query): Query<SubscriptionQuery>,
) -> Result<Json<Vec<Subscription>>, ApiError> {
    let records = state.engine.list_subscriptions(&auth.account).await?;
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
pub async fn types(_auth: Authenticated) -> Json<Vec<&'static str>> {
    Json(vec![regkeep_engine::tag_watch::TAG_UPDATE])
}

pub async fn get(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Vec<Subscription>>, ApiError> {
    let record = state.engine.get_subscription(&auth.account, &id).await?;
    Ok(Json(vec![to_wire(&record)]))
}

pub async fn update(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    JsonBody(request): JsonBody<SubscriptionUpdate>,
) -> Result<Json<Vec<Subscription>>, ApiError> {
    let record = state
        .engine
        .set_subscription_active(&auth.account, &id, request.active)
        .await?;
    Ok(Json(vec![to_wire(&record)]))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_subscription(&auth.account, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/events` filters (Anchore's names).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    event_type: Option<String>,
    level: Option<String>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    /// RFC 3339; events created at or after.
    since: Option<String>,
    /// RFC 3339; events created before.
    before: Option<String>,
    /// 1-based.
    page: Option<i64>,
    limit: Option<i64>,
}

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
    let (events, next_page) = state.engine.list_events(&auth.account, &filter).await?;
    Ok(Json(EventsList {
        item_count: events.len(),
        results: events.iter().map(event_to_wire).collect(),
        next_page,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteEventsQuery {
    before: Option<String>,
}

/// `DELETE /v1/events[?before=...]`: clears the account's event log.
pub async fn delete_events(
    State(state): State<AppState>,
    auth: Authenticated,
    Query(query): Query<DeleteEventsQuery>,
) -> Result<Json<Vec<String>>, ApiError> {
    let before = parse_time("before", query.before.as_deref())?;
    state.engine.delete_events(&auth.account, before).await?;
    Ok(Json(Vec::new()))
}

/// An RFC 3339 query parameter.
fn parse_time(name: &str, value: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
    value
        .map(|v| {
            Timestamp::parse_rfc3339(v).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "{name} `{v}` is not an RFC 3339 time: give one like 2026-11-29T03:00:00Z"
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
        last_digest: r.last_digest.clone(),
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
                servicename: "regkeep".into(),
                hostid: "regkeep".into(),
                request_id: None,
            },
        },
    }
}
