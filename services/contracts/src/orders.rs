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
/// Payment methods the (simulated) provider accepts.
pub const PAYMENT_METHODS: &[&str] = &["card"];

impl CreateOrderRequest {
    /// Structural rules (both the gateway and order-service apply them, so a bad order is refused at
    /// the edge and still cannot slip past the owner). SKUs are checked by order-service's catalogue.
    pub fn validate(&self) -> Result<(), String> {
        if self.items.is_empty() {
            return Err("an order needs at least one item".into());
        }
        if self.items.len() > MAX_ITEMS {
            return Err(format!(
                "an order may have at most {MAX_ITEMS} items, got {}",
                self.items.len()
            ));
        }
        for (i, item) in self.items.iter().enumerate() {
            if item.sku.trim().is_empty() || item.sku.len() > 64 {
                return Err(format!("items[{i}].sku must be 1 to 64 characters"));
            }
            if item.qty <= 0 || item.qty > MAX_QTY {
                return Err(format!(
                    "items[{i}].qty must be between 1 and {MAX_QTY}, got {}",
                    item.qty
                ));
            }
        }
        if !PAYMENT_METHODS.contains(&self.payment.method.as_str()) {
            return Err(format!("payment.method must be one of {PAYMENT_METHODS:?}"));
        }
        if self.payment.token.trim().is_empty() || self.payment.token.len() > 128 {
            return Err("payment.token must be 1 to 128 characters".into());
        }
        Ok(())
    }
}

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

    fn req(items: Vec<(&str, i64)>) -> CreateOrderRequest {
        CreateOrderRequest {
            items: items
                .into_iter()
                .map(|(sku, qty)| LineItem {
                    sku: sku.into(),
                    qty,
                })
                .collect(),
            payment: PaymentInfo {
                method: "card".into(),
                token: "tok_test_123".into(),
            },
        }
    }

    #[test]
    fn validation_accepts_the_brief_order_and_limits() {
        assert!(req(vec![("LAPTOP-1", 1)]).validate().is_ok());
        assert!(req(vec![("LAPTOP-1", MAX_QTY)]).validate().is_ok());
        assert!(req(vec![("LAPTOP-1", 1); MAX_ITEMS]).validate().is_ok());
    }

    #[test]
    fn validation_rejects_bad_quantities_and_shapes() {
        for bad in [
            req(vec![]),
            req(vec![("LAPTOP-1", 0)]),
            req(vec![("LAPTOP-1", -3)]),
            req(vec![("LAPTOP-1", MAX_QTY + 1)]),
            req(vec![("", 1)]),
            req(vec![("LAPTOP-1", 1); MAX_ITEMS + 1]),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        let mut r = req(vec![("LAPTOP-1", 1)]);
        r.payment.method = "cash".into();
        assert!(r.validate().is_err());
        r.payment.method = "card".into();
        r.payment.token = " ".into();
        assert!(r.validate().is_err());
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
