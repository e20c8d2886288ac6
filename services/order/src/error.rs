//! order-service's error type: every failure a handler can return, mapped to a status code and the
//! shared JSON body `{"error":{"code","message"}}`, rendered (and logged once, with the cause chain
//! of server errors) by `service_kit::error`.

use axum::Json;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use contracts::error::codes;
use serde::de::DeserializeOwned;
use service_kit::error::BadRequest;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    BadRequest(#[from] BadRequest),
    #[error("{0}")]
    Validation(String),
    #[error("unknown SKU `{0}`")]
    UnknownSku(String),
    #[error("order `{0}` not found")]
    NotFound(String),
    #[error("{0}")]
    CardDeclined(String),
    #[error("{0}")]
    OutOfStock(String),
    #[error("{service} did not answer within {timeout_ms} ms")]
    UpstreamTimeout {
        service: &'static str,
        timeout_ms: u64,
    },
    /// A downstream service answered 504 itself: something behind it timed out (payment's card
    /// provider under `provider.slow` with a timeout set), so the client gets a 504 too.
    #[error("{service} timed out behind it: {message}")]
    UpstreamGatewayTimeout {
        service: &'static str,
        message: String,
    },
    #[error("{service} failed: {message}")]
    Upstream {
        service: &'static str,
        message: String,
    },
    #[error("{0}")]
    InvalidIdempotencyKey(String),
    #[error(
        "Idempotency-Key `{0}` was already used with a different order; use a new key for a new order"
    )]
    IdempotencyKeyReused(String),
    #[error(
        "an order with this Idempotency-Key is still being processed; retry later for its answer"
    )]
    IdempotencyInProgress,
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(b) => b.status(),
            Self::InvalidIdempotencyKey(_) => StatusCode::BAD_REQUEST,
            // The draft's answers: 422 for a key reused with another payload, 409 while the first
            // request with the key is still running.
            Self::IdempotencyKeyReused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IdempotencyInProgress => StatusCode::CONFLICT,
            Self::Validation(_) | Self::UnknownSku(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::CardDeclined(_) => StatusCode::PAYMENT_REQUIRED,
            Self::OutOfStock(_) => StatusCode::CONFLICT,
            Self::UpstreamTimeout { .. } | Self::UpstreamGatewayTimeout { .. } => {
                StatusCode::GATEWAY_TIMEOUT
            }
            Self::Upstream { .. } => StatusCode::BAD_GATEWAY,
            Self::Database(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(b) => b.code(),
            Self::InvalidIdempotencyKey(_) => "invalid_idempotency_key",
            Self::IdempotencyKeyReused(_) => "idempotency_key_reused",
            Self::IdempotencyInProgress => "idempotency_in_progress",
            Self::Validation(_) => codes::VALIDATION_FAILED,
            Self::UnknownSku(_) => codes::UNKNOWN_SKU,
            Self::NotFound(_) => codes::NOT_FOUND,
            Self::CardDeclined(_) => codes::CARD_DECLINED,
            Self::OutOfStock(_) => codes::OUT_OF_STOCK,
            Self::UpstreamTimeout { .. } | Self::UpstreamGatewayTimeout { .. } => {
                codes::UPSTREAM_TIMEOUT
            }
            Self::Upstream { .. } => codes::UPSTREAM_UNAVAILABLE,
            Self::Database(_) | Self::Internal(_) => codes::INTERNAL,
        }
    }
}

impl ApiError {
    /// The JSON body the caller gets (also what an Idempotency-Key stores for its retries).
    pub fn body(&self) -> contracts::error::ErrorBody {
        contracts::error::ErrorBody::new(self.code(), self.to_string())
    }
}

/// `err` with its whole `source()` chain on one line (downstream failures and the relay log it).
pub use service_kit::error::error_chain;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Internal details (SQL errors, ...) stay in the log; the caller gets a stable message.
        service_kit::error::render(&self, self.status(), self.code())
    }
}

/// `Json<T>` whose rejections are [`ApiError`]s (JSON bodies, 413 instead of axum's plain text).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(BadRequest::from_json_rejection(rejection, None).into()),
        }
    }
}
