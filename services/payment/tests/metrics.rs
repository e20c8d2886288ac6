//! Business metrics reach the meter provider: `payment_processing_duration_seconds` gets one
//! observation per processed charge, labelled by outcome. (Its own test binary: it installs the
//! process-wide meter provider.)

mod common;

use common::*;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, SdkMeterProvider};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charges_record_payment_processing_duration() {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_periodic_exporter(exporter.clone())
        .build();
    opentelemetry::global::set_meter_provider(provider.clone());
    let app = spawn_sqlite().await;

    let ok = app
        .charge(
            &unique("key"),
            &charge_body(&unique("ord"), "tok_test_123"),
            None,
        )
        .await;
    assert_eq!(ok.status(), 201);
    let declined = app
        .charge(
            &unique("key"),
            &charge_body(&unique("ord"), "tok_declined"),
            None,
        )
        .await;
    assert_eq!(declined.status(), 402);
    // A replay processes nothing, so it records nothing.
    let key = unique("key");
    let body = charge_body(&unique("ord"), "tok_test_123");
    app.charge(&key, &body, None).await;
    app.charge(&key, &body, None).await;

    // The periodic reader exports on its own thread; flush from a blocking task.
    let flushing = provider.clone();
    tokio::task::spawn_blocking(move || flushing.force_flush())
        .await
        .unwrap()
        .expect("flush metrics");

    let exported = exporter.get_finished_metrics().expect("exported metrics");
    let latest = exported.last().expect("at least one export");
    let mut counts = std::collections::HashMap::new();
    let mut found = false;
    for metric in latest.scope_metrics().flat_map(|s| s.metrics()) {
        if metric.name() != "payment_processing_duration_seconds" {
            continue;
        }
        found = true;
        assert_eq!(metric.unit(), "s");
        let AggregatedMetrics::F64(MetricData::Histogram(histogram)) = metric.data() else {
            panic!("payment_processing_duration_seconds is an f64 histogram");
        };
        for point in histogram.data_points() {
            let status = point
                .attributes()
                .find(|kv| kv.key.as_str() == "payment.status")
                .map(|kv| kv.value.to_string())
                .unwrap_or_default();
            *counts.entry(status).or_insert(0) += point.count();
            assert!(
                point
                    .attributes()
                    .all(|kv| !kv.value.to_string().contains("tok_"))
            );
        }
    }
    assert!(found, "payment_processing_duration_seconds was exported");
    assert_eq!(counts.get("succeeded"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("declined"), Some(&1), "{counts:?}");
    app.stop().await;
}
