//! `/v1/images`: resolve and record images (Anchore's paths and field names where Anchore has
//! them). Every answer with records is a JSON array, as in Anchore.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use regkeep_domain::wire::{ImageAddRequest, ImageDetail, ImageRecord as WireImage};
use regkeep_store::ImageRecord;

use crate::auth::Authenticated;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::AppState;

pub async fn add(
    State(state): State<AppState>,
    auth: Authenticated,
    JsonBody(request): JsonBody<ImageAddRequest>,
) -> Result<Json<Vec<WireImage>>, ApiError> {
    let record = state
        .engine
        .add_image(
            &auth.account,
            &request.tag,
            request.digest.as_deref(),
            request.platform.as_deref(),
        )
        .await?;
    Ok(Json(vec![to_wire(&record)]))
}

pub async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<Vec<WireImage>>, ApiError> {
    Ok(Json(
        state
            .engine
            .list_images(&auth.account)
            .await?
            .iter()
            .map(to_wire)
            .collect(),
    ))
}

pub async fn get(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(digest): Path<String>,
) -> Result<Json<Vec<WireImage>>, ApiError> {
    Ok(Json(vec![to_wire(
        &state.engine.get_image(&auth.account, &digest).await?,
    )]))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(digest): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.delete_image(&auth.account, &digest).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn to_wire(record: &ImageRecord) -> WireImage {
    let name = format!("{}/{}", record.registry, record.repository);
    WireImage {
        image_digest: record.image_digest.clone(),
        user_id: record.account.to_string(),
        resolution_status: "resolved".into(),
        image_detail: vec![ImageDetail {
            registry: record.registry.clone(),
            repo: record.repository.clone(),
            tag: record.tag.clone(),
            fulltag: record.tag.as_ref().map(|t| format!("{name}:{t}")),
            digest: record.image_digest.clone(),
            fulldigest: format!("{name}@{}", record.image_digest),
            image_digest: record.image_digest.clone(),
            created_at: record.created_at,
            last_updated: record.last_updated,
        }],
        media_type: record.media_type.clone(),
        manifest_digest: record.manifest_digest.clone(),
        platform: record.platform.clone(),
        config_digest: record.config_digest.clone(),
        image_created: record.image_created.clone(),
        layer_count: record.layer_count,
        image_size: record.total_size,
        resolved_at: record.resolved_at,
        created_at: record.created_at,
        last_updated: record.last_updated,
    }
}
