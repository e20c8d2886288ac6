//! payment-service API types: `POST /charges` (with an `Idempotency-Key` header) and `POST /refunds`.
//! 201 for a succeeded charge, 402 with error code `card_declined` for a declined one.

use serde::{Deserialize, Serialize};

/// Header carrying the client's idempotency key on `POST /charges`: a retried charge with the same key
/// returns the first result and never charges twice.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// `POST /charges` body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRequest {
    pub order_id: String,
    pub amount_cents: i64,
    pub currency: String,
    pub method: String,
    pub token: String,
}

impl std::fmt::Debug for ChargeRequest {
    // Debug output lands in logs and error messages: redact the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChargeRequest")
            .field("order_id", &self.order_id)
            .field("amount_cents", &self.amount_cents)
            .field("currency", &self.currency)
            .field("method", &self.method)
            .field("token", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    Succeeded,
    Declined,
}

/// `POST /charges` answer (201 body when succeeded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeResponse {
    pub charge_id: String,
    pub status: ChargeStatus,
    pub amount_cents: i64,
    /// Last four digits of the card: the most of a card that may ever be shown.
    pub card_last4: String,
}

/// `POST /refunds` body: compensates a charge (order-service sends it when a reservation fails).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub charge_id: String,
    pub order_id: String,
    pub amount_cents: i64,
}

/// `POST /refunds` answer (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundResponse {
    pub refund_id: String,
    pub charge_id: String,
    pub status: String,
}
