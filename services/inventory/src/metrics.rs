//! inventory-service's business metrics, exported over OTLP through the global meter provider that
//! `telemetry::init` installs (no-op instruments until then, e.g. in tests).

use opentelemetry::metrics::{Counter, Gauge, Histogram};

#[derive(Debug, Clone)]
pub struct Metrics {
    /// Seed 000's `inventory_reservations_total`: units reserved, by `inventory.sku`.
    pub reservations: Counter<u64>,
    /// Messages behind the partition's high watermark when a message is processed.
    pub consumer_lag: Gauge<i64>,
    /// Time from `occurred_at_ms` of an event to the start of its processing.
    pub message_age: Histogram<f64>,
}

impl Metrics {
    pub fn new() -> Self {
        let meter = opentelemetry::global::meter("inventory-service");
        Self {
            reservations: meter
                .u64_counter("inventory_reservations_total")
                .with_description("Units of stock reserved for orders")
                .with_unit("{unit}")
                .build(),
            consumer_lag: meter
                .i64_gauge("inventory_consumer_lag")
                .with_description("Messages between the consumed offset and the high watermark")
                .with_unit("{message}")
                .build(),
            message_age: meter
                .f64_histogram("inventory_consumer_message_age_seconds")
                .with_description("Age of an order event when the consumer starts processing it")
                .with_unit("s")
                .with_boundaries(vec![
                    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
                ])
                .build(),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
