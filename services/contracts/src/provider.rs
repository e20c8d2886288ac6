//! card-provider's wire API (the simulator of the outside world in `services/provider`): Stripe-like
//! charges and refunds, and a mail API. One definition: the simulator serves these types and
//! payment-service and inventory-service call it with them.
//!
//! Like Stripe: amounts in the currency's minor unit, an `Idempotency-Key` header on every POST (the
//! same key with the same parameters replays the first answer, marked `Idempotent-Replayed: true`;
//! with other parameters it is refused with 400 `idempotency_error`), errors as
//! `{"error":{"type","code","message"}}`. Unlike Stripe: JSON bodies instead of form encoding.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Test-mode header choosing how the simulated world behaves for this one request, the way Stripe's
/// test cards choose an outcome. Values: [`SIMULATE_SLOW`], [`SIMULATE_RATE_LIMITED`],
/// [`SIMULATE_DECLINE`]. A real provider has no such header; callers send it only in test mode.
pub const SIMULATE_HEADER: &str = "x-simulate";
/// The provider (or its mail API) is degraded: answers take the configured slow latency.
pub const SIMULATE_SLOW: &str = "slow";
/// The provider's rate limiter refuses the first attempts of each Idempotency-Key with 429.
pub const SIMULATE_RATE_LIMITED: &str = "rate_limited";
/// The card is declined (as for token `tok_chargeDeclined`).
pub const SIMULATE_DECLINE: &str = "decline";
/// Header marking an answer replayed from an earlier request with the same Idempotency-Key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// `POST /v1/charges`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCharge {
    pub amount: i64,
    pub currency: String,
    /// A card token (`tok_visa`, `tok_chargeDeclined`, ...). Never logged or stored by the simulator.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// A charge as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    pub id: String,
    pub object: String,
    pub amount: i64,
    pub amount_refunded: i64,
    pub currency: String,
    /// `succeeded` or `failed`.
    pub status: String,
    pub paid: bool,
    /// Epoch seconds.
    pub created: i64,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// `POST /v1/refunds`. Without `amount`, the whole remaining amount is refunded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    pub charge: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    pub object: String,
    pub charge: String,
    pub amount: i64,
    pub status: String,
    pub created: i64,
}

/// `POST /v1/emails`: send one templated e-mail. No address or name travels: the template and the
/// order id are all the demo needs, and the lab stays free of personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendEmail {
    pub template: String,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub id: String,
    pub object: String,
    pub template: String,
    /// `queued`.
    pub status: String,
    pub created: i64,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

/// A list answer (`GET /v1/charges`, `GET /v1/emails`), newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct List<T> {
    pub object: String,
    pub data: Vec<T>,
}

/// Every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderErrorBody {
    pub error: ProviderError,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderError {
    /// `card_error`, `invalid_request_error`, `idempotency_error`, `rate_limit_error`.
    pub r#type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_code: Option<String>,
    pub message: String,
    /// The failed charge's id, for a decline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge: Option<String>,
}

/// The decline message (Stripe's wording).
pub const DECLINE_MESSAGE: &str = "Your card was declined.";

/// Tokens the provider always declines (Stripe's test-token spelling).
pub const DECLINED_TOKENS: &[&str] = &["tok_chargeDeclined", "tok_declined"];
