//! The service map in headless Chromium against the real stack (the harness in `support`): after
//! a checkout through the gateway (gateway → order → payment and inventory over HTTP, and the
//! Kafka hand-off order-service → `orders` → the consumer), `/dependencies` shows the four
//! services and the topic, the api-gateway → order-service edge with its rate label, the Kafka
//! edges dashed, and re-reads the map on its own (live refresh); the lookback menu changes the
//! window; clicking order-service's box opens `/monitor/order-service`. Prints how long the page
//! took to show the map; screenshot `dependencies`.

mod support;

use std::sync::OnceLock;

use fantoccini::Locator;
use support::{Env, checkout, js_until, screenshot, wait_until, webdriver_click};

struct Ids {
    /// The checkout placed at start-up.
    _trace: String,
}

fn env() -> &'static Env<Ids> {
    static ENV: OnceLock<Result<Env<Ids>, String>> = OnceLock::new();
    support::shared(
        &ENV,
        |_| {},
        async |stack, query| {
            let trace = checkout(stack, query, "checkout", true).await?;
            Ok(Ids { _trace: trace })
        },
    )
}

fn node_sel(id: &str) -> String {
    format!("[data-node=\"{id}\"]")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_map_shows_the_checkout_and_opens_red_pages() {
    let e = env();
    // The consumer of the `orders` topic, read from the collector rather than assumed.
    let map: serde_json::Value = reqwest::get(format!(
        "{}/api/v1/dependencies?lookback=900000",
        e.query.base_url()
    ))
    .await
    .expect("query API")
    .json()
    .await
    .expect("json");
    let consumer = map["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .find(|x| x["source"] == "topic:orders" && x["kind"] == "kafka")
        .and_then(|x| x["target"].as_str())
        .unwrap_or_else(|| panic!("no consumer of topic orders in {map}"))
        .to_string();
    let viewer = e.viewer.clone();
    e.with_browser(move |c| async move {
        c.goto(&format!("{viewer}/dependencies?lookback=15m"))
            .await
            .expect("open /dependencies");
        // When the last of the checkout's nodes is in the DOM, since navigation start.
        let shown_ms = js_until(
            &c,
            "the map's nodes",
            "['service:api-gateway', 'service:order-service', 'service:payment-service', \
              'service:inventory-service', 'topic:orders']\
              .every(id => document.querySelector(`#service-map [data-node=\"${id}\"]`)) \
              && performance.now()",
        )
        .await;
        println!(
            "[viewer] service map: shown {:.0} ms after navigation start (checkout stack, 15 min window)",
            shown_ms.as_f64().unwrap_or_default()
        );

        // The gateway's call edge, labelled with its rate.
        let edge = "#service-map .map-edge[data-source=\"service:api-gateway\"][data-target=\"service:order-service\"]";
        let label = js_until(
            &c,
            "the api-gateway → order-service label",
            &format!("document.querySelector('{edge}')?.querySelector('.edge-label')?.textContent"),
        )
        .await;
        let label = label.as_str().unwrap_or_default().to_string();
        let rate = label.split(" · ").next().unwrap_or_default();
        assert!(
            ["/s", "/min", "/h"].iter().any(|u| rate.ends_with(u))
                && rate.chars().next().is_some_and(|ch| ch.is_ascii_digit()),
            "a rate first in {label:?}"
        );
        assert!(label.contains("p95"), "{label:?}");
        let kind = js_until(&c, "its kind", &format!("document.querySelector('{edge}').dataset.kind")).await;
        assert_eq!(kind, "http");

        // Kafka: order-service → the topic → its consumer, dashed.
        for (src, dst) in [
            ("service:order-service".to_string(), "topic:orders".to_string()),
            ("topic:orders".to_string(), consumer.clone()),
        ] {
            let dash = js_until(
                &c,
                &format!("the kafka edge {src} → {dst}"),
                &format!(
                    "(() => {{ const g = document.querySelector('#service-map .map-edge.kafka[data-source=\"{src}\"][data-target=\"{dst}\"]'); \
                       return g && getComputedStyle(g.querySelector('.edge-line')).strokeDasharray; }})()"
                ),
            )
            .await;
            assert_ne!(dash, "none", "kafka edges are dashed");
        }
        // The topic is a pill, services are boxes.
        let rx = js_until(
            &c,
            "the topic's shape",
            &format!("document.querySelector('{} .node-box').getAttribute('rx')", node_sel("topic:orders")),
        )
        .await;
        assert!(rx.as_str().unwrap_or("0").parse::<f64>().unwrap_or(0.0) > 20.0, "rx {rx}");
        let stats = js_until(
            &c,
            "order-service's stats",
            &format!("document.querySelector('{} .node-stats')?.textContent", node_sel("service:order-service")),
        )
        .await;
        assert!(stats.as_str().unwrap_or_default().contains("req"), "{stats}");

        // Live: the hydrated page re-reads the map every 5 s without a page load.
        js_until(
            &c,
            "a refresh of the map",
            "Number(document.querySelector('#map-caption')?.dataset.refreshes) >= 1 \
             && document.querySelector('#service-map [data-node=\"service:order-service\"]')",
        )
        .await;
        screenshot(&c, "dependencies").await;

        // The lookback menu.
        webdriver_click(&c, Locator::Css("a[data-lookback=\"5m\"]")).await;
        js_until(
            &c,
            "the 5 minute window",
            "location.search === '?lookback=5m' && document.querySelector('a[data-lookback=\"5m\"]').classList.contains('active')",
        )
        .await;

        // A service's box opens its RED page. The map is re-rendered every refresh, so a click
        // may meet a replaced element: click again until the page has changed.
        let path = wait_until("the RED page", std::time::Duration::from_secs(30), || async {
            let url = c.current_url().await.ok()?;
            if url.path() == "/monitor/order-service" {
                return Some(url.path().to_string());
            }
            if url.path() == "/dependencies"
                && let Ok(el) = c
                    .find(Locator::Css("#service-map [data-node=\"service:order-service\"] a"))
                    .await
            {
                let _ = el.click().await;
            }
            None
        })
        .await
        .expect("navigation to /monitor/order-service");
        assert_eq!(path, "/monitor/order-service");
    })
    .await;
}
