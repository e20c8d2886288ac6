//! How every service answers a failed request: the status and code its own error enum chooses,
//! the JSON body `contracts::error::ErrorBody` (`{"error":{"code","message"}}`), and one log line
//! per failure: the whole cause chain at ERROR for server errors (the caller only sees the
//! variant's stable message, never SQL errors and the like), the message at INFO for rejections.
//! Both log texts go through `contracts::redact`, like the body: no card data in a log.
//!
//! A service keeps its variants (thiserror) and their mapping to statuses and codes, and
//! delegates the rendering:
//!
//! ```ignore
//! impl IntoResponse for ApiError {
//!     fn into_response(self) -> Response {
//!         service_kit::error::render(&self, self.status(), self.code())
//!     }
//! }
//! ```

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use contracts::error::ErrorBody;
use contracts::redact::redact;

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
