//! `order_creation_duration_seconds` reaches the meter provider, with the outcome as an attribute.
//! Its own test binary: it installs a global meter provider with an in-memory exporter.

mod common;

use common::*;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn order_creation_duration_is_recorded_per_outcome() {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    // Before the app is built: it takes its meter from the global provider.
    opentelemetry::global::set_meter_provider(provider.clone());
    let stack = Stack::sqlite(None).await;

    assert_eq!(
        stack
            .place(&order_body("LAPTOP-1", 1, "tok_test_123"), None)
            .await
            .status(),
        201
    );
    assert_eq!(
        stack
            .place(&order_body("LAPTOP-1", 1, "tok_declined"), None)
            .await
            .status(),
        402
    );

    let flushed = provider.clone();
    tokio::task::spawn_blocking(move || flushed.force_flush())
        .await
        .unwrap()
        .expect("flush metrics");
    let metrics = exporter.get_finished_metrics().unwrap();
    let mut outcomes = Vec::new();
    for rm in &metrics {
        for scope in rm.scope_metrics() {
            for metric in scope.metrics() {
                if metric.name() != "order_creation_duration_seconds" {
                    continue;
                }
                assert_eq!(metric.unit(), "s");
                let AggregatedMetrics::F64(MetricData::Histogram(h)) = metric.data() else {
                    panic!("a f64 histogram, got {:?}", metric.data());
                };
                for point in h.data_points() {
                    let outcome = point
                        .attributes()
                        .find(|kv| kv.key.as_str() == "outcome")
                        .map(|kv| kv.value.to_string())
                        .unwrap();
                    outcomes.push((outcome, point.count()));
                }
            }
        }
    }
    outcomes.sort();
    outcomes.dedup();
    assert!(
        outcomes.contains(&("confirmed".to_owned(), 1)),
        "{outcomes:?}"
    );
    assert!(
        outcomes.contains(&("card_declined".to_owned(), 1)),
        "{outcomes:?}"
    );
}
