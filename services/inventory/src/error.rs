//! inventory-service's one error type: every failure a handler can return, mapped to an HTTP status
//! and the shared `{"error":{"code","message"}}` body, rendered (and logged once, with the cause
//! chain of server errors) by `service_kit::error`.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use contracts::error::codes;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("malformed JSON body: {0}")]
    InvalidJson(String),

    #[error("request body is larger than the {limit}-byte limit")]
    PayloadTooLarge { limit: usize },

    #[error("unsupported media type: send `Content-Type: application/json`")]
    UnsupportedMediaType,

    #[error("{0}")]
    Validation(String),

    #[error("unknown SKU `{0}`")]
    UnknownSku(String),

    #[error("{sku}: {requested} requested, {available} available")]
    OutOfStock {
        sku: String,
        requested: i64,
        available: i64,
    },

    #[error("mail API: {0}")]
    Mail(String),

    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl InventoryError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJson(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) | Self::UnknownSku(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::OutOfStock { .. } => StatusCode::CONFLICT,
            Self::Mail(_) => StatusCode::BAD_GATEWAY,
            Self::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => codes::INVALID_JSON,
            Self::PayloadTooLarge { .. } => codes::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Validation(_) => codes::VALIDATION_FAILED,
            Self::UnknownSku(_) => codes::UNKNOWN_SKU,
            Self::OutOfStock { .. } => codes::OUT_OF_STOCK,
            Self::Mail(_) => "mail_unavailable",
            Self::Database(_) => codes::INTERNAL,
        }
    }

    /// Maps axum's JSON extractor rejection onto our codes (413 stays 413, syntax errors are 400,
    /// well-formed JSON of the wrong shape is 422).
    pub fn from_json_rejection(rejection: JsonRejection, limit: usize) -> Self {
        match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge { limit },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::UNPROCESSABLE_ENTITY => {
                Self::Validation(contracts::redact::redact(&rejection.body_text()))
            }
            _ => Self::InvalidJson(contracts::redact::redact(&rejection.body_text())),
        }
    }
}

impl IntoResponse for InventoryError {
    fn into_response(self) -> Response {
        service_kit::error::render(&self, self.status(), self.code())
    }
}

/// The error's cause chain, `: `-separated (the Kafka consumer logs it for failed events).
pub use service_kit::error::error_chain as cause_chain;
