//! The JSON error body every tracelab service answers with: `{"error":{"code":..,"message":..}}`.

use serde::{Deserialize, Serialize};

/// `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A machine-readable `code` (snake_case, stable) and a human-readable `message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    /// The message goes through [`crate::redact::redact`]: an error body must never echo card data.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: crate::redact::redact(&message.into()),
            },
        }
    }
}

/// Error codes shared across services (a caller matches on these, so they never change spelling).
pub mod codes {
    pub const BAD_REQUEST: &str = "bad_request";
    pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
    pub const INVALID_JSON: &str = "invalid_json";
    pub const VALIDATION_FAILED: &str = "validation_failed";
    pub const UNKNOWN_SKU: &str = "unknown_sku";
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const NOT_FOUND: &str = "not_found";
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    pub const CARD_DECLINED: &str = "card_declined";
    pub const OUT_OF_STOCK: &str = "out_of_stock";
    pub const UPSTREAM_TIMEOUT: &str = "upstream_timeout";
    pub const UPSTREAM_UNAVAILABLE: &str = "upstream_unavailable";
    pub const UNKNOWN_SCENARIO: &str = "unknown_scenario";
    pub const INTERNAL: &str = "internal";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_the_documented_shape() {
        let body = ErrorBody::new(codes::OUT_OF_STOCK, "LAPTOP-1: 0 left");
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "out_of_stock", "message": "LAPTOP-1: 0 left"}})
        );
    }
}
