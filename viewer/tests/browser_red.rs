//! The RED pages in headless Chromium against the real stack (its collector runs
//! `collector/config/default.yaml`, whose traces pipeline feeds the spanmetrics connector): a few
//! checkouts, one of them `payment.slow`, then `/monitor` lists the three services of a checkout
//! with a non-zero rate and refreshes itself once hydrated, and `/monitor/payment-service` draws
//! exemplar dots on its latency chart, the slowest of which opens the slow checkout's trace.
//! Screenshots `monitor` and `monitor-service`.

mod support;

use std::sync::OnceLock;

use fantoccini::Locator;
use serde_json::Value;
use support::{Env, checkout, js_until, screenshot, shared, webdriver_click};

struct Traces {
    /// The payment.slow checkout.
    slow: String,
}

fn env() -> &'static Env<Traces> {
    static ENV: OnceLock<Result<Env<Traces>, String>> = OnceLock::new();
    shared(
        &ENV,
        |_| {},
        async |stack, query| {
            // The endpoint the pages read answers (404 would mean no spanmetrics connector).
            let url = format!("{}/api/v1/metrics/red", query.base_url());
            let r = reqwest::get(&url).await.map_err(|e| e.to_string())?;
            if !r.status().is_success() {
                return Err(format!(
                    "{url}: {} {} — the test stack's collector config needs spanmetrics",
                    r.status(),
                    r.text().await.unwrap_or_default()
                ));
            }
            checkout(stack, query, "checkout", true).await?;
            checkout(stack, query, "payment.declined", false).await?;
            let slow = checkout(stack, query, "payment.slow", true).await?;
            checkout(stack, query, "checkout", true).await?;
            Ok(Traces { slow })
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_lists_the_checkout_services_with_their_rates_and_refreshes_live() {
    let e = env();
    let url = format!("{}/monitor", e.viewer);
    e.with_browser(async move |c| {
        c.goto(&url).await.expect("open /monitor");
        let rows = js_until(
            &c,
            "service rows with a rate",
            "(() => { const r = [...document.querySelectorAll('tr.red-row')]
                .map(t => [t.dataset.service, Number(t.dataset.rate)]);
                return r.length >= 3 ? r : false; })()",
        )
        .await;
        let rows = rows.as_array().expect("rows");
        for svc in ["api-gateway", "order-service", "payment-service"] {
            let rate = rows
                .iter()
                .find(|r| r[0] == svc)
                .and_then(|r| r[1].as_f64())
                .unwrap_or_else(|| panic!("{svc} is not listed: {rows:?}"));
            assert!(rate > 0.0, "{svc}: rate {rate}");
        }
        // Each row opens the service's page; the nav bar links here.
        let href = js_until(
            &c,
            "row link",
            "document.querySelector('tr.red-row[data-service=\"payment-service\"] a')?.getAttribute('href')",
        )
        .await;
        assert_eq!(href, Value::from("/monitor/payment-service"));
        js_until(&c, "nav link", "!!document.querySelector('header.nav a[href=\"/monitor\"]')").await;
        screenshot(&c, "monitor").await;
        // Hydrated, the page reloads its data on a timer without a page load.
        c.execute("window.__same_page = true; return 1", vec![])
            .await
            .expect("mark the page");
        js_until(
            &c,
            "a live refresh",
            "Number(document.querySelector('.monitor')?.dataset.refreshes) >= 1
             && document.querySelectorAll('tr.red-row').length >= 3",
        )
        .await;
        let same = c
            .execute("return window.__same_page === true", vec![])
            .await
            .expect("read the mark");
        assert_eq!(same, Value::Bool(true), "the refresh reloaded the page");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slowest_exemplar_on_the_latency_chart_opens_the_slow_trace() {
    let e = env();
    let url = format!("{}/monitor/payment-service", e.viewer);
    let slow = e.slow.clone();
    e.with_browser(async move |c| {
        c.goto(&url).await.expect("open /monitor/payment-service");
        let dots = js_until(
            &c,
            "exemplar dots on the latency chart",
            "(() => { const d = [...document.querySelectorAll('svg[data-chart=\"latency\"] a.exemplar')]
                .map(a => [a.dataset.traceId, a.dataset.spanId, Number(a.dataset.durationMs), a.getAttribute('href')]);
                return d.length ? d : false; })()",
        )
        .await;
        // The three charts and the operations table are there too.
        js_until(
            &c,
            "rate and error charts, operations",
            "document.querySelectorAll('svg.red-chart path.line').length >= 5
             && !!document.querySelector('tr.op-row[data-operation=\"POST /charges\"]')",
        )
        .await;
        screenshot(&c, "monitor-service").await;
        let dots = dots.as_array().expect("dots").clone();
        let top = dots
            .iter()
            .max_by(|a, b| a[2].as_f64().unwrap().total_cmp(&b[2].as_f64().unwrap()))
            .expect("a dot");
        assert_eq!(top[0], Value::from(slow.clone()), "the slowest dot: {dots:?}");
        assert!(top[2].as_f64().unwrap() > 1000.0, "payment.slow is over a second: {top:?}");
        let span = top[1].as_str().unwrap().to_string();
        assert_eq!(top[3], Value::from(format!("/trace/{slow}?span={span}")));
        // A real click on the dot opens the trace page of the slow checkout, its span selected.
        webdriver_click(
            &c,
            Locator::Css(&format!(
                "svg[data-chart=\"latency\"] a.exemplar[data-span-id=\"{span}\"] circle"
            )),
        )
        .await;
        let want = format!("/trace/{slow}");
        js_until(
            &c,
            "the trace page",
            &format!(
                "location.pathname === '{want}' && location.search === '?span={span}'
                 && document.body.innerText.includes('payment-service')"
            ),
        )
        .await;
    })
    .await;
}
