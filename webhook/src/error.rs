//! Errors as Esup-Pod expects them: `{"detail": "..."}` with the reference manager's status
//! codes. Each carries a stable category, the label of `esup_runner_webhook_errors_total`.

use warp::http::StatusCode;
use warp::reply::{Reply, Response};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {detail}")]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    pub category: &'static str,
}

impl ApiError {
    pub fn new(status: StatusCode, category: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            category,
        }
    }

    pub fn missing_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "MissingToken",
            "Missing authentication token",
        )
    }

    pub fn invalid_token() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidToken",
            "Invalid or expired token",
        )
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "TaskNotFound", "Task not found")
    }

    pub fn bad_request(category: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, category, detail)
    }

    pub fn unavailable(category: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, category, detail)
    }

    pub fn internal(category: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, category, detail)
    }

    pub fn into_response(self) -> Response {
        let body = warp::reply::json(&esup_api::wire::ErrorBody::new(self.detail));
        let mut response = warp::reply::with_status(body, self.status).into_response();
        if self.status == StatusCode::UNAUTHORIZED
            && let Ok(value) = warp::http::HeaderValue::from_str("Bearer")
        {
            response
                .headers_mut()
                .insert(warp::http::header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// A filter's refusal (authentication, rate limit), answered by the routes' one recover.
impl warp::reject::Reject for ApiError {}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        ApiError::into_response(self)
    }
}

/// A result store failure as an answer: a bad path is the caller's, a file too large 413,
/// anything else the store's (503).
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        let category = e.category();
        match e {
            crate::store::StoreError::InvalidPath(_)
            | crate::store::StoreError::InvalidTaskId(_) => {
                Self::bad_request(category, "Invalid result file path")
            }
            crate::store::StoreError::TooLarge { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, category, e.to_string())
            }
            other => Self::unavailable(category, other.to_string()),
        }
    }
}
