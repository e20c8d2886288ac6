//! inventory-service's one error type: every failure a handler can return, mapped to an HTTP status
//! and the shared `{"error":{"code","message"}}` body, rendered (and logged once, with the cause
//! chain of server errors) by `service_kit::error`.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use contracts::error::codes;
use service_kit::error::BadRequest;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error(transparent)]
    BadRequest(#[from] BadRequest),

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
            Self::BadRequest(b) => b.status(),
            Self::Validation(_) | Self::UnknownSku(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::OutOfStock { .. } => StatusCode::CONFLICT,
            Self::Mail(_) => StatusCode::BAD_GATEWAY,
            Self::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(b) => b.code(),
            Self::Validation(_) => codes::VALIDATION_FAILED,
            Self::UnknownSku(_) => codes::UNKNOWN_SKU,
            Self::OutOfStock { .. } => codes::OUT_OF_STOCK,
            Self::Mail(_) => "mail_unavailable",
            Self::Database(_) => codes::INTERNAL,
        }
    }

    /// axum's JSON extractor rejection, as every service maps it (`service_kit::error::BadRequest`).
    pub fn from_json_rejection(rejection: JsonRejection, limit: usize) -> Self {
        Self::BadRequest(BadRequest::from_json_rejection(rejection, Some(limit)))
    }
}

impl IntoResponse for InventoryError {
    fn into_response(self) -> Response {
        service_kit::error::render(&self, self.status(), self.code())
    }
}

/// The error's cause chain, `: `-separated (the Kafka consumer logs it for failed events).
pub use service_kit::error::error_chain as cause_chain;
