//! Kafka event types: a versioned envelope around each event. Topic `orders`, message key = order id,
//! headers carry `traceparent`/`baggage` (written by `telemetry::kafka::inject`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::orders::LineItem;

/// The topic order-service's outbox relay publishes to.
pub const ORDERS_TOPIC: &str = "orders";
/// `Envelope::type` of [`OrderPlaced`].
pub const ORDER_PLACED: &str = "order.placed";
/// Current schema version of [`OrderPlaced`]; consumers reject versions they do not know.
pub const ORDER_PLACED_VERSION: u32 = 1;

/// Every event on the wire: `id` is unique per event (consumers de-duplicate on it), `type` names the
/// payload schema and `version` its revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub id: Uuid,
    pub r#type: String,
    pub version: u32,
    pub occurred_at_ms: i64,
    pub data: T,
}

/// Emitted once per confirmed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: String,
    pub items: Vec<LineItem>,
    pub total_cents: i64,
    pub charge_id: Option<String>,
}

impl Envelope<OrderPlaced> {
    /// A fresh `order.placed` envelope (time-ordered v7 id).
    pub fn order_placed(data: OrderPlaced, occurred_at_ms: i64) -> Self {
        Self {
            id: Uuid::now_v7(),
            r#type: ORDER_PLACED.to_owned(),
            version: ORDER_PLACED_VERSION,
            occurred_at_ms,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_serialises_type_without_raw_prefix() {
        let env = Envelope::order_placed(
            OrderPlaced {
                order_id: "ord_1".into(),
                items: vec![LineItem {
                    sku: "LAPTOP-1".into(),
                    qty: 1,
                }],
                total_cents: 129_900,
                charge_id: Some("ch_1".into()),
            },
            1,
        );
        let json = serde_json::to_value(&env).unwrap();
        assert_eq!(json["type"], "order.placed");
        assert_eq!(json["version"], 1);
        let back: Envelope<OrderPlaced> = serde_json::from_value(json).unwrap();
        assert_eq!(back, env);
    }
}
