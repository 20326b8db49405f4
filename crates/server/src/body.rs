//! [`JsonBody`]: a JSON request body with errors in regkeep's shape. A body must say
//! `Content-Type: application/json` (or `…+json`), else 415: a browser's cross-site form post
//! (which can carry `text/plain` or no JSON type, and the Basic credentials the browser holds)
//! can then never create an account or set a password. Size is bounded by `max_body_bytes`
//! (413); malformed JSON or wrong fields are a 400 that says which.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::AppState;

pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let declared_json = match request.headers().get(header::CONTENT_TYPE) {
            Some(content_type) => {
                let text = content_type
                    .to_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let mime = text.split(';').next().unwrap_or_default().trim().to_owned();
                if mime != "application/json" && !mime.ends_with("+json") {
                    return Err(ApiError::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        format!("Content-Type `{mime}` is not supported: send the body as JSON with `Content-Type: application/json`"),
                    ));
                }
                true
            }
            None => false,
        };
        let limit = state.max_body_bytes;
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {limit} bytes: send a smaller body"),
            )
        };
        // Refuse a declared oversize body before reading any of it.
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let bytes = match tokio::time::timeout(
            state.body_timeout,
            axum::body::to_bytes(request.into_body(), limit),
        )
        .await
        {
            Ok(read) => read.map_err(|_| too_large())?,
            Err(_) => {
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body did not arrive within {} s: send the whole body at once",
                        state.body_timeout.as_secs()
                    ),
                ))
            }
        };
        if !declared_json && !bytes.is_empty() {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the request has a body but no Content-Type: send it with `Content-Type: application/json`",
            ));
        }
        parse(&bytes).map(JsonBody)
    }
}

fn parse<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty: send a JSON object",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = match inner.classify() {
            serde_json::error::Category::Data if path != "." => {
                format!("the request body's field `{path}` is wrong: {inner}")
            }
            serde_json::error::Category::Data => {
                format!("the request body has a missing or wrongly typed field: {inner}")
            }
            _ => format!("the request body is not valid JSON: {inner}"),
        };
        ApiError::bad_request(message)
    })
}
