//! Order API types: what a client POSTs to the gateway (and the gateway forwards to order-service) and
//! the order it gets back.

use serde::{Deserialize, Serialize};

/// One line of an order. `qty` is signed on purpose: a negative quantity must reach validation (and be
/// rejected with a clear message) instead of failing JSON decoding with a vaguer one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    pub sku: String,
    pub qty: i64,
}

/// How the customer pays. `token` is a payment-provider token (`tok_test_123`, `tok_declined`), never a
/// card number; it must never reach a log, attribute or metric label.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentInfo {
    pub method: String,
    pub token: String,
}

impl std::fmt::Debug for PaymentInfo {
    // Debug output lands in logs and error messages: redact the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentInfo")
            .field("method", &self.method)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// `POST /orders` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOrderRequest {
    pub items: Vec<LineItem>,
    pub payment: PaymentInfo,
}

/// Limits both the gateway and order-service enforce.
pub const MAX_ITEMS: usize = 50;
pub const MAX_QTY: i64 = 1000;

/// Lifecycle of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Stored, payment not (yet) confirmed.
    Pending,
    /// Charged and reserved.
    Confirmed,
    /// The charge was declined; nothing was reserved.
    PaymentFailed,
    /// Charged, then compensated (refunded) because the reservation failed.
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::PaymentFailed => "payment_failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for OrderStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => Self::Pending,
            "confirmed" => Self::Confirmed,
            "payment_failed" => Self::PaymentFailed,
            "cancelled" => Self::Cancelled,
            other => return Err(format!("unknown order status `{other}`")),
        })
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order as returned by `POST /orders` (201) and `GET /orders/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: String,
    pub status: OrderStatus,
    pub items: Vec<LineItem>,
    pub total_cents: i64,
    pub charge_id: Option<String>,
    pub reservation_id: Option<String>,
    pub created_at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brief_request_body_decodes() {
        let body = r#"{"items":[{"sku":"LAPTOP-1","qty":1}],"payment":{"method":"card","token":"tok_test_123"}}"#;
        let req: CreateOrderRequest = serde_json::from_str(body).unwrap();
        assert_eq!(req.items[0].sku, "LAPTOP-1");
        assert_eq!(req.payment.method, "card");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let p = PaymentInfo {
            method: "card".into(),
            token: "tok_test_123".into(),
        };
        assert!(!format!("{p:?}").contains("tok_test_123"));
    }

    #[test]
    fn status_round_trips() {
        for s in [
            OrderStatus::Pending,
            OrderStatus::Confirmed,
            OrderStatus::PaymentFailed,
            OrderStatus::Cancelled,
        ] {
            assert_eq!(s.as_str().parse::<OrderStatus>().unwrap(), s);
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::String(s.as_str().into())
            );
        }
    }
}
