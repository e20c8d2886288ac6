//! How every service answers a failed request: the status and code its own error enum chooses,
//! the JSON body `contracts::error::ErrorBody` (`{"error":{"code","message"}}`), and one log line
//! per failure: the whole cause chain at ERROR for server errors (the caller only sees the
//! variant's stable message, never SQL errors and the like), the message at INFO for rejections.
//! Both log texts go through `contracts::redact`, like the body: no card data in a log.
//!
//! A service keeps its variants (thiserror) and their mapping to statuses and codes, and
//! delegates the rendering:
//!
//! ```text
//! impl IntoResponse for ApiError {
//!     fn into_response(self) -> Response {
//!         service_kit::error::render(&self, self.status(), self.code())
//!     }
//! }
//! ```

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use contracts::error::{ErrorBody, codes};
use contracts::redact::redact;

/// A request body refused before any handler logic, the same way by every service: one set of
/// variants, statuses, codes and messages (a service wraps it as one variant of its own enum,
/// `#[error(transparent)] BadRequest(#[from] BadRequest)`).
#[derive(Debug, thiserror::Error)]
pub enum BadRequest {
    /// Not JSON (a syntax error): 400 `invalid_json`.
    #[error("malformed JSON body: {0}")]
    InvalidJson(String),
    /// 413 `payload_too_large`; the limit when the service knows it.
    #[error("request body is larger than the {} limit", limit_text(*.limit))]
    PayloadTooLarge { limit: Option<usize> },
    /// 415 `unsupported_media_type`.
    #[error("unsupported media type: send `Content-Type: application/json`")]
    UnsupportedMediaType,
    /// Well-formed JSON of the wrong shape: 422 `validation_failed`.
    #[error("{0}")]
    WrongShape(String),
}

fn limit_text(limit: Option<usize>) -> String {
    limit.map_or_else(|| "size".to_owned(), |l| format!("{l}-byte"))
}

impl BadRequest {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJson(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::WrongShape(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => codes::INVALID_JSON,
            Self::PayloadTooLarge { .. } => codes::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => codes::UNSUPPORTED_MEDIA_TYPE,
            Self::WrongShape(_) => codes::VALIDATION_FAILED,
        }
    }

    /// axum's JSON extractor rejection: 413 stays 413, a missing content type is 415, a syntax
    /// error 400, the wrong shape 422. serde's text quotes the offending value, so it goes through
    /// card-data redaction here, where the error is made.
    pub fn from_json_rejection(rejection: JsonRejection, limit: Option<usize>) -> Self {
        match &rejection {
            JsonRejection::MissingJsonContentType(_) => return Self::UnsupportedMediaType,
            r if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Self::PayloadTooLarge { limit };
            }
            _ => {}
        }
        let text = redact(&rejection.body_text());
        if rejection.status() == StatusCode::UNPROCESSABLE_ENTITY {
            Self::WrongShape(text)
        } else {
            Self::InvalidJson(text)
        }
    }
}

impl BadRequest {
    /// A body parsed by hand with serde_json: a syntax error (or a cut-off body) is 400, data of
    /// the wrong shape 422 — the same split as [`BadRequest::from_json_rejection`].
    pub fn from_serde_json(err: &serde_json::Error) -> Self {
        let text = redact(&err.to_string());
        match err.classify() {
            serde_json::error::Category::Data => Self::WrongShape(text),
            _ => Self::InvalidJson(text),
        }
    }
}

/// `err` with its whole `source()` chain on one line, `: `-separated.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Logs `err` once and answers `status` with the body `{"error":{"code","message"}}`, the message
/// being `err`'s `Display` (its sources are logged, never sent). `code` is one of
/// `contracts::error::codes` or the service's own stable code.
pub fn render(
    err: &(dyn std::error::Error + 'static),
    status: StatusCode,
    code: &'static str,
) -> Response {
    if status.is_server_error() {
        tracing::error!(
            error.type = code,
            exception.message = %redact(&error_chain(err)),
            "request failed"
        );
    } else {
        tracing::info!(
            error.type = code,
            error.message = %redact(&err.to_string()),
            "request rejected"
        );
    }
    (status, Json(ErrorBody::new(code, err.to_string()))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Demo {
        #[error("database error")]
        Database(#[source] std::io::Error),
        #[error("card 4242424242424242 is not accepted")]
        Rejected,
    }

    #[test]
    fn the_chain_names_every_cause() {
        let err = Demo::Database(std::io::Error::other("disk full"));
        assert_eq!(error_chain(&err), "database error: disk full");
    }

    #[tokio::test]
    async fn the_body_is_the_shared_error_body_without_card_data() {
        let response = render(
            &Demo::Rejected,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body.error.code, "validation_failed");
        assert!(!body.error.message.contains("4242424242424242"), "{body:?}");

        let err = Demo::Database(std::io::Error::other("disk full"));
        let response = render(&err, StatusCode::INTERNAL_SERVER_ERROR, "internal");
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body.error.message, "database error",
            "causes stay in the log"
        );
    }
}
