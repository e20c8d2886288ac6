//! Business metrics reach the meter provider: `inventory_reservations_total` counts reserved units
//! per SKU, and refused reservations count nothing. (Its own test binary: it installs the
//! process-wide meter provider.)

mod common;

use common::*;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, SdkMeterProvider};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_count_reserved_units() {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_periodic_exporter(exporter.clone())
        .build();
    opentelemetry::global::set_meter_provider(provider.clone());
    let app = spawn_sqlite().await;

    let order = unique("ord");
    let body = reservation(&order, &[("LAPTOP-1", 2), ("MOUSE-1", 1)]);
    assert_eq!(app.reserve(&body, None).await.status(), 201);
    assert_eq!(
        app.reserve(&body, None).await.status(),
        201,
        "replay counts nothing"
    );
    let refused = app
        .reserve(&reservation(&unique("ord"), &[("SOLDOUT-1", 1)]), None)
        .await;
    assert_eq!(refused.status(), 409);

    let flushing = provider.clone();
    tokio::task::spawn_blocking(move || flushing.force_flush())
        .await
        .unwrap()
        .expect("flush metrics");

    let exported = exporter.get_finished_metrics().expect("exported metrics");
    let latest = exported.last().expect("at least one export");
    let mut units = std::collections::HashMap::new();
    for metric in latest.scope_metrics().flat_map(|s| s.metrics()) {
        if metric.name() != "inventory_reservations_total" {
            continue;
        }
        let AggregatedMetrics::U64(MetricData::Sum(sum)) = metric.data() else {
            panic!("inventory_reservations_total is a u64 counter");
        };
        assert!(sum.is_monotonic());
        for point in sum.data_points() {
            let sku = point
                .attributes()
                .find(|kv| kv.key.as_str() == "inventory.sku")
                .map(|kv| kv.value.to_string())
                .unwrap_or_default();
            units.insert(sku, point.value());
        }
    }
    assert_eq!(units.get("LAPTOP-1"), Some(&2), "{units:?}");
    assert_eq!(units.get("MOUSE-1"), Some(&1), "{units:?}");
    assert_eq!(units.get("SOLDOUT-1"), None, "{units:?}");
    app.stop().await;
}
