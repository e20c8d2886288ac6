//! payment-service's one error type: every failure a handler can return, mapped to an HTTP status and
//! the shared `{"error":{"code","message"}}` body, rendered (and logged once, with the cause chain
//! of server errors) by `service_kit::error`.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use contracts::error::codes;
use service_kit::error::BadRequest;

use crate::provider::ProviderFailure;

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error(transparent)]
    BadRequest(#[from] BadRequest),

    #[error("{0}")]
    Validation(String),

    #[error("the Idempotency-Key header is required (1-255 visible ASCII characters)")]
    MissingIdempotencyKey,

    #[error("Idempotency-Key `{0}` was already used for a different charge request")]
    IdempotencyKeyReused(String),

    #[error("a charge with this Idempotency-Key is still being processed; retry later")]
    IdempotencyInProgress,

    /// This request's claim on a pending charge was taken over by a retry (its lease ran out while
    /// it was still running), so its result was not stored; the retry's result is the charge's.
    #[error(
        "charge `{0}` was taken over by a retry after this request's claim lease ran out; retry with the same Idempotency-Key for its result"
    )]
    ClaimLost(String),

    #[error("card ending {card_last4} was declined: {reason}")]
    CardDeclined {
        charge_id: String,
        card_last4: String,
        reason: String,
    },

    #[error("charge `{0}` not found")]
    ChargeNotFound(String),

    #[error("charge `{charge_id}` cannot be refunded: {reason}")]
    NotRefundable { charge_id: String, reason: String },

    #[error(transparent)]
    Provider(#[from] crate::provider::ProviderFailure),

    #[error("an earlier request with this Idempotency-Key failed at the card provider; retry it")]
    EarlierAttemptFailed,

    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl PaymentError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(b) => b.status(),
            Self::MissingIdempotencyKey => StatusCode::BAD_REQUEST,
            Self::Validation(_) | Self::IdempotencyKeyReused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IdempotencyInProgress | Self::ClaimLost(_) | Self::NotRefundable { .. } => {
                StatusCode::CONFLICT
            }
            Self::CardDeclined { .. } => StatusCode::PAYMENT_REQUIRED,
            Self::ChargeNotFound(_) => StatusCode::NOT_FOUND,
            Self::Provider(ProviderFailure::Timeout { .. }) => StatusCode::GATEWAY_TIMEOUT,
            Self::Provider(_) | Self::EarlierAttemptFailed => StatusCode::BAD_GATEWAY,
            Self::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(b) => b.code(),
            Self::Validation(_) => codes::VALIDATION_FAILED,
            Self::MissingIdempotencyKey => "missing_idempotency_key",
            Self::IdempotencyKeyReused(_) => "idempotency_key_reused",
            Self::IdempotencyInProgress => "idempotency_in_progress",
            Self::ClaimLost(_) => "idempotency_claim_lost",
            Self::CardDeclined { .. } => codes::CARD_DECLINED,
            Self::ChargeNotFound(_) => codes::NOT_FOUND,
            Self::NotRefundable { .. } => "charge_not_refundable",
            Self::Provider(ProviderFailure::Timeout { .. }) => "provider_timeout",
            Self::Provider(_) | Self::EarlierAttemptFailed => "provider_unavailable",
            Self::Database(_) => codes::INTERNAL,
        }
    }

    /// axum's JSON extractor rejection, as every service maps it (`service_kit::error::BadRequest`).
    pub fn from_json_rejection(rejection: JsonRejection, limit: usize) -> Self {
        Self::BadRequest(BadRequest::from_json_rejection(rejection, Some(limit)))
    }
}

impl From<crate::store::CompleteError> for PaymentError {
    fn from(err: crate::store::CompleteError) -> Self {
        match err {
            crate::store::CompleteError::NotHeld(charge_id) => Self::ClaimLost(charge_id),
            crate::store::CompleteError::Database(err) => Self::Database(err),
        }
    }
}

pub use contracts::redact::redact;

impl IntoResponse for PaymentError {
    fn into_response(self) -> Response {
        service_kit::error::render(&self, self.status(), self.code())
    }
}
