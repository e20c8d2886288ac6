//! payment-service's business metrics, exported over OTLP through the global meter provider that
//! `telemetry::init` installs (no-op instruments until then, e.g. in tests).

use opentelemetry::metrics::Histogram;

/// Seed 000's `payment_processing_duration_seconds`.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Time spent in `charge` (fraud check + provider + storing the result), by
    /// `payment.status` and `payment.method`.
    pub processing_duration: Histogram<f64>,
}

impl Metrics {
    pub fn new() -> Self {
        let meter = opentelemetry::global::meter("payment-service");
        Self {
            processing_duration: meter
                .f64_histogram("payment_processing_duration_seconds")
                .with_description("Time to process a card charge, provider call included")
                .with_unit("s")
                .with_boundaries(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0,
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
