//! The one error type of the web layer: each variant is an HTTP status and a JSON body
//! `{"error":{"code","message"}}` that a student or a script can act on.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No `Authorization: Bearer TOKEN` header.
    #[error(
        "missing credentials: send `Authorization: Bearer TOKEN` with the token you were given"
    )]
    MissingToken,
    /// A token that is unknown or was revoked.
    #[error("unknown or revoked token: ask an instructor for a new one")]
    BadToken,
    /// No such resource, or one the caller may not know exists.
    #[error("not found")]
    NotFound,
    /// For instructors only.
    #[error("this is for instructors only")]
    Forbidden,
    /// A web form without its session's CSRF token (a forged or stale form).
    #[error("this form has expired or did not come from this site: reload the page and try again")]
    Csrf,
    /// The upload is over the size limit.
    #[error("the upload is over the size limit of {0} bytes")]
    TooLarge(u64),
    /// A malformed request, in words for its sender.
    #[error("{0}")]
    BadRequest(String),
    /// Over the upload rate limit; `retry_after` seconds from now, at `at`, it is allowed again.
    #[error(
        "upload limit reached ({limit}): your next upload is allowed at {at}, in {retry_after} s"
    )]
    RateLimited {
        /// The limit, in words.
        limit: String,
        /// When the next upload is allowed (RFC 3339, UTC).
        at: String,
        /// Seconds until then, rounded up (the `Retry-After` header).
        retry_after: u64,
    },
    /// The server is shutting down.
    #[error("the server is shutting down and takes no uploads now; try again in a minute")]
    ShuttingDown,
    /// A failure of the server itself; the details go to the log, not to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// What the client is told (an internal error's details are logged here instead).
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(detail) => {
                tracing::error!("{detail}");
                "internal error; it has been logged".to_string()
            }
            other => other.to_string(),
        }
    }

    /// The HTTP status and the error's code (the JSON body's `code`).
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::MissingToken | AppError::BadToken => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            AppError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            AppError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::Csrf => (StatusCode::FORBIDDEN, "csrf"),
            AppError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            AppError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            AppError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Internal(format!("database: {e}"))
    }
}

impl From<std::io::Error> for AppError {
    fn from(e: std::io::Error) -> Self {
        AppError::Internal(format!("i/o: {e}"))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = self.public_message();
        let mut error = json!({"code": code, "message": message});
        match self {
            AppError::MissingToken | AppError::BadToken => (
                status,
                [(header::WWW_AUTHENTICATE, "Bearer".to_string())],
                Json(json!({"error": error})),
            )
                .into_response(),
            AppError::RateLimited {
                at, retry_after, ..
            } => {
                error["retry_at"] = json!(at);
                error["retry_after_secs"] = json!(retry_after);
                (
                    status,
                    [(header::RETRY_AFTER, retry_after.to_string())],
                    Json(json!({"error": error})),
                )
                    .into_response()
            }
            _ => (status, Json(json!({"error": error}))).into_response(),
        }
    }
}
