//! `/v1/images`: resolve and record images (Anchore's paths, field names and answers where
//! Anchore has them). Every answer with records is a JSON array, as in Anchore.

use axum::extract::{Path, Query, State};
use axum::Json;
use regkeep_domain::entities::ImageRecord;
use regkeep_domain::wire::{
    DeleteImageResponse, ImageAddRequest, ImageDetail, ImageRecord as WireImage, NOT_ANALYZED,
};
use serde::Deserialize;

use crate::auth::Authenticated;
use crate::body::JsonBody;
use crate::error::ApiError;
use crate::AppState;

#[utoipa::path(
    post,
    path = "/v1/images",
    tag = "images",
    operation_id = "add_image",
    summary = "Resolves a tag (or digest) and records the image",
    request_body = regkeep_domain::wire::ImageAddRequest,
    responses((status = 200, description = "The recorded image", body = Vec<regkeep_domain::wire::ImageRecord>), (status = 404, description = "No registry of the account serves the image, or the tag does not exist", body = regkeep_domain::wire::ErrorBody), (status = 422, description = "The registry or AWS refused, or could not be reached: `detail.reason` says which", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn add(
    State(state): State<AppState>,
    auth: Authenticated,
    JsonBody(request): JsonBody<ImageAddRequest>,
) -> Result<Json<Vec<WireImage>>, ApiError> {
    let added = state
        .engine
        .images()
        .add_image(
            &auth.account,
            &request.tag,
            request.digest.as_deref(),
            request.platform.as_deref(),
        )
        .await?;
    let mut answer = to_wire(&added.record);
    answer.tag_points_at = added.tag_points_at.map(|d| d.to_string());
    Ok(Json(vec![answer]))
}

/// `GET /v1/images` query (Anchore's; other parameters are ignored, as Anchore does).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// `host/repo:tag`, an image ID or an image digest.
    fulltag: Option<String>,
    /// With `fulltag`: every digest the tag was added at, not only the latest.
    history: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/images",
    tag = "images",
    operation_id = "list_images",
    summary = "The account's images",
    params(ListQuery),
    responses((status = 200, description = "OK", body = Vec<regkeep_domain::wire::ImageRecord>))
)]
pub async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<WireImage>>, ApiError> {
    let history = match query.history.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "") => false,
        Some("true" | "1") => true,
        Some(_) => {
            return Err(ApiError::bad_request(
                "history must be true or false: give history=true to list every digest the tag was added at",
            ))
        }
    };
    let records = state
        .engine
        .images()
        .list_images(&auth.account, query.fulltag.as_deref(), history)
        .await?;
    Ok(Json(records.iter().map(to_wire).collect()))
}

#[utoipa::path(
    get,
    path = "/v1/images/{digest}",
    tag = "images",
    operation_id = "get_image",
    summary = "One image, by digest",
    params(("digest" = String, Path, description = "An image digest, `sha256:<64 hex>`", pattern = "^sha256:[0-9a-f]{64}$")),
    responses((status = 200, description = "OK", body = Vec<regkeep_domain::wire::ImageRecord>), (status = 404, description = "No such image in the account", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn get(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(digest): Path<String>,
) -> Result<Json<Vec<WireImage>>, ApiError> {
    Ok(Json(vec![to_wire(
        &state
            .engine
            .images()
            .get_image(&auth.account, &digest)
            .await?,
    )]))
}

/// `DELETE /v1/images/{digest}`: 200 with Anchore's `DeleteImageResponse`. The record is gone
/// when this answers; `status` is `deleting` because that is the value Anchore's clients accept
/// as success.
#[utoipa::path(
    delete,
    path = "/v1/images/{digest}",
    tag = "images",
    operation_id = "delete_image",
    summary = "Forgets an image",
    params(("digest" = String, Path, description = "An image digest, `sha256:<64 hex>`", pattern = "^sha256:[0-9a-f]{64}$")),
    responses((status = 200, description = "Deleted (`status` is `deleting`, as Anchore answers)", body = regkeep_domain::wire::DeleteImageResponse), (status = 404, description = "No such image in the account", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn delete(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(digest): Path<String>,
) -> Result<Json<DeleteImageResponse>, ApiError> {
    state
        .engine
        .images()
        .delete_image(&auth.account, &digest)
        .await?;
    Ok(Json(deleted(digest)))
}

#[utoipa::path(
    get,
    path = "/v1/images/by_id/{image_id}",
    tag = "images",
    operation_id = "get_image_by_id",
    summary = "The images with an image ID",
    params(("image_id" = String, Path, description = "An image ID (the config digest's 64 hex)", pattern = "^[0-9a-fA-F]{64}$")),
    responses((status = 200, description = "OK", body = Vec<regkeep_domain::wire::ImageRecord>), (status = 404, description = "No image with that ID in the account", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn get_by_id(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(image_id): Path<String>,
) -> Result<Json<Vec<WireImage>>, ApiError> {
    let records = state
        .engine
        .images()
        .images_by_id(&auth.account, &image_id)
        .await?;
    Ok(Json(records.iter().map(to_wire).collect()))
}

/// `DELETE /v1/images/by_id/{imageId}`: deletes every record with that image ID; answers for
/// the first (Anchore's answer names one digest) and lists the others in `detail`.
#[utoipa::path(
    delete,
    path = "/v1/images/by_id/{image_id}",
    tag = "images",
    operation_id = "delete_image_by_id",
    summary = "Forgets every image with an image ID",
    params(("image_id" = String, Path, description = "An image ID (the config digest's 64 hex)", pattern = "^[0-9a-fA-F]{64}$")),
    responses((status = 200, description = "Deleted", body = regkeep_domain::wire::DeleteImageResponse), (status = 404, description = "No image with that ID in the account", body = regkeep_domain::wire::ErrorBody))
)]
pub async fn delete_by_id(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(image_id): Path<String>,
) -> Result<Json<DeleteImageResponse>, ApiError> {
    let digests = state
        .engine
        .images()
        .delete_images_by_id(&auth.account, &image_id)
        .await?;
    let digests: Vec<String> = digests.iter().map(ToString::to_string).collect();
    let mut answer = deleted(digests.first().cloned().unwrap_or_default());
    if digests.len() > 1 {
        answer.detail = Some(format!(
            "deleted every record with image ID {image_id}: {}",
            digests.join(", ")
        ));
    }
    Ok(Json(answer))
}

fn deleted(digest: String) -> DeleteImageResponse {
    DeleteImageResponse {
        digest,
        status: "deleting".into(),
        detail: None,
    }
}

fn to_wire(record: &ImageRecord) -> WireImage {
    let image_id = record.config_digest.hex().to_owned();
    let image_detail = record
        .tags
        .iter()
        .map(|t| {
            let name = format!("{}/{}", t.registry, t.repository);
            ImageDetail {
                registry: t.registry.clone(),
                repo: t.repository.clone(),
                tag: t.tag.clone(),
                fulltag: t.tag.as_ref().map(|tag| format!("{name}:{tag}")),
                digest: record.image_digest.to_string(),
                fulldigest: format!("{name}@{}", record.image_digest),
                image_digest: record.image_digest.to_string(),
                image_id: image_id.clone(),
                user_id: record.account.to_string(),
                tag_detected_at: t.created_at,
                created_at: t.created_at,
                last_updated: t.last_updated,
            }
        })
        .collect();
    WireImage {
        image_digest: record.image_digest.to_string(),
        parent_digest: record.image_digest.to_string(),
        user_id: record.account.to_string(),
        analysis_status: NOT_ANALYZED.into(),
        image_status: "active".into(),
        image_type: "docker".into(),
        analyzed_at: None,
        annotations: serde_json::Map::new(),
        tag_points_at: None,
        resolution_status: "resolved".into(),
        image_detail,
        media_type: record.media_type.clone(),
        manifest_digest: record.manifest_digest.to_string(),
        platform: record.platform.clone(),
        config_digest: record.config_digest.to_string(),
        image_created: record.image_created.clone(),
        layer_count: record.layer_count,
        image_size: record.total_size,
        resolved_at: record.resolved_at,
        created_at: record.created_at,
        last_updated: record.last_updated,
    }
}
