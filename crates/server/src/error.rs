//! [`ApiError`]: every error answer, as `{"message", "httpcode", "detail"}` with the status
//! codes of DESIGN 1. A 5xx never echoes internal text: it is logged and the client gets a
//! generic message.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use regkeep_domain::wire::ErrorBody;
use regkeep_engine::{EngineError, ValidationError};
use serde_json::{json, Value};
use tracing::error;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub detail: Value,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            detail: json!({}),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            EngineError::Unauthorized.to_string(),
        )
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::BadInput(m) => ApiError::new(StatusCode::BAD_REQUEST, m),
            EngineError::Unauthorized => ApiError::unauthorized(),
            EngineError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
            EngineError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            EngineError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
            EngineError::Throttled { retry_after } => ApiError {
                retry_after: Some(retry_after),
                ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, err.to_string())
            },
            EngineError::ValidationFailed {
                ref registry,
                ref source,
            } => unprocessable(&err, ("registry", registry), source),
            EngineError::ResolutionFailed {
                ref image,
                ref source,
            } => unprocessable(&err, ("image", image), source),
            EngineError::Busy => ApiError {
                retry_after: Some(1),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
            },
            EngineError::StorageFull => {
                error!("a write failed: the database's disk is full");
                ApiError::new(StatusCode::INSUFFICIENT_STORAGE, err.to_string())
            }
            EngineError::Unavailable(ref cause) => {
                error!(cause = %cause, "a write failed: the database cannot be written");
                ApiError {
                    retry_after: Some(30),
                    ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string())
                }
            }
            EngineError::Internal(m) => {
                error!(error = %m, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error: the server logged the cause; try again, and report it if it persists",
                )
            }
        }
    }
}

/// 422 for what a registry (or AWS) refused or failed: `detail` names the subject (`registry` or
/// `image`), the reason, the registry's status, AWS's code and the answer.
fn unprocessable(err: &EngineError, subject: (&str, &str), source: &ValidationError) -> ApiError {
    let mut detail = json!({
        "reason": source.kind(),
        "registry_status": source.status(),
        "aws_code": source.aws_code(),
        "answer": source.to_string(),
    });
    detail[subject.0] = subject.1.into();
    ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        message: err.to_string(),
        detail,
        retry_after: None,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            message: self.message,
            httpcode: self.status.as_u16(),
            detail: self.detail,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"regkeep\""),
            );
        }
        response
    }
}
