//! The flags panel (`/flags`) in headless Chromium against the real stack (the harness in
//! `support`; `tracelab`'s launcher gives the viewer `GATEWAY_URL`, `INVENTORY_URL` and the run's
//! `ADMIN_TOKEN`, and the services require that token on their admin routes):
//!
//! - break it / see it: `payment.slow` switched on at 100 % in the panel makes the next plain
//!   checkout (no scenario header) slow in payment — its trace says so, and so does the trace
//!   page's bottleneck sentence; switched off in the panel (with an empty share box: the PUT sends
//!   only `enabled:false`), the next checkout is fast again;
//! - fix it: with `inventory.slow_query` switched on in the panel, "Add the index" makes the next
//!   checkout's `SELECT stock_movements` span much shorter than the one before; the consumer fix
//!   switches inventory's concurrency;
//! - the token never reaches the browser, and the services refuse admin calls without it.
//!
//! Screenshot `flags`. The two tests change the same gateway's flags, so they take turns.

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use fantoccini::{Client, Locator};
use lab::{SpanMatcher, TraceView, Wait};
use serde_json::{Value, json};
use support::{Env, js_until, screenshot, webdriver_click};

fn env() -> &'static Env<()> {
    static ENV: OnceLock<Result<Env<()>, String>> = OnceLock::new();
    support::shared(&ENV, |_| {}, async |_, _| Ok(()))
}

/// The flags are one gateway's state: one test at a time changes them.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A checkout without `X-Tracelab-Scenario`: the gateway's flags decide its scenario. Returns its
/// trace once `until` has arrived.
async fn plain_checkout(e: &Env<()>, until: SpanMatcher) -> TraceView {
    let resp = reqwest::Client::new()
        .post(format!("{}/orders", e.stack.urls.gateway))
        .json(&json!({"items":[{"sku":"LAPTOP-1","qty":1}],"payment":{"method":"card","token":"tok_test_123"}}))
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(resp.status(), 201, "a plain checkout succeeds");
    let id = lab::spec::trace_id_of(resp.headers()).expect("X-Trace-Id");
    e.query
        .fetch_trace(
            &id,
            &Wait::new(Duration::from_secs(40), Duration::from_millis(800)).until_present(until),
        )
        .await
        .unwrap_or_else(|err| panic!("trace {id}: {err}"))
}

/// The scenario the gateway decided, from its root span's `tracelab.scenario`.
fn scenario_of(t: &TraceView) -> String {
    t.attr_of(
        &SpanMatcher::name("POST /orders").service("api-gateway"),
        "tracelab.scenario",
    )
    .unwrap_or_else(|| panic!("no tracelab.scenario on the root:\n{}", t.tree()))
}

fn longest(t: &TraceView, m: &SpanMatcher) -> Duration {
    t.find(m)
        .iter()
        .map(|s| s.duration())
        .max()
        .unwrap_or_else(|| panic!("no {m:?} in\n{}", t.tree()))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `css` inside the card of `scenario`.
fn in_card(scenario: &str, css: &str) -> String {
    format!("[data-scenario='{scenario}'] {css}")
}

/// Opens `/flags` and waits until the card of `scenario` is hydrated (its handlers are live).
async fn open_panel(c: &Client, scenario: &str) {
    c.goto(&format!("{}/flags", env().viewer)).await.unwrap();
    js_until(
        c,
        &format!("the {scenario} card hydrated"),
        &format!(
            "document.querySelector(\"[data-scenario='{scenario}'][data-hydrated='true']\") !== null"
        ),
    )
    .await;
}

/// Sets the card's checkbox and share box as a user would (the input events Leptos listens to),
/// clicks Apply, and waits until the card shows the gateway's answer `expect`.
async fn apply_flag(c: &Client, scenario: &str, enabled: bool, share: &str, expect: &str) {
    let script = format!(
        "const card = document.querySelector(\"[data-scenario='{scenario}']\"); \
         const box = card.querySelector('.flag-enabled'); \
         if (box.checked !== {enabled}) {{ box.click(); }} \
         const p = card.querySelector('.flag-probability'); \
         p.value = {share:?}; p.dispatchEvent(new Event('input', {{bubbles: true}})); \
         return box.checked;"
    );
    assert_eq!(
        c.execute(&script, vec![]).await.unwrap(),
        json!(enabled),
        "the checkbox follows the click"
    );
    webdriver_click(c, Locator::Css(&in_card(scenario, ".flag-apply"))).await;
    let v = js_until(
        c,
        &format!("{scenario} shows {expect:?}"),
        &format!(
            "(() => {{ const s = document.querySelector(\"{}\"); \
               const err = document.querySelector(\"{}\"); \
               if (err) return 'ERROR ' + err.textContent; \
               return s && s.textContent === {expect:?}; }})()",
            in_card(scenario, ".flag-state"),
            in_card(scenario, ".flag-message"),
        ),
    )
    .await;
    assert_eq!(v, json!(true), "{scenario}: the panel reported {v}");
}

/// GET an admin route with the stack's admin token (not through the viewer).
async fn admin_get(e: &Env<()>, url: String) -> Value {
    let resp = e.stack.admin_http().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{url} with the token");
    resp.json().await.unwrap()
}

/// The gateway's flag of `scenario`.
async fn gateway_flag(e: &Env<()>, scenario: &str) -> Value {
    admin_get(e, format!("{}/admin/flags", e.stack.urls.gateway)).await[scenario].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_payment_slow_in_the_panel_changes_the_next_checkout() {
    let e = env();
    let _turn = TURN.lock().await;
    e.with_browser(|c| async move {
        let e = env();
        let charge = SpanMatcher::name("charge").service("payment-service");
        open_panel(&c, "payment.slow").await;
        let state = c
            .find(Locator::Css(&in_card("payment.slow", ".flag-state")))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(state, "off", "the stack starts with every flag off");

        // Break it.
        apply_flag(&c, "payment.slow", true, "100", "on · 100 %").await;
        assert_eq!(
            gateway_flag(e, "payment.slow").await,
            json!({"enabled": true, "probability": 100}),
            "the gateway itself has the flag on"
        );
        screenshot(&c, "flags").await;
        let slow = plain_checkout(e, charge.clone()).await;
        assert_eq!(scenario_of(&slow), "payment.slow");
        let slow_charge = longest(&slow, &charge);
        assert!(
            slow_charge >= Duration::from_millis(1000),
            "payment's charge waits out the retries: {} ms\n{}",
            ms(slow_charge),
            slow.tree()
        );
        slow.assert_share(&charge, None, 0.6)
            .unwrap_or_else(|err| panic!("{err}"));

        // See it: the trace page names payment as the bottleneck.
        c.goto(&format!("{}/trace/{}", e.viewer, slow.trace_id()))
            .await
            .unwrap();
        let sentence = js_until(
            &c,
            "the bottleneck sentence",
            "(() => { const b = document.querySelector('.bottleneck'); return b && b.textContent; })()",
        )
        .await;
        let sentence = sentence.as_str().unwrap_or_default().to_owned();
        assert!(
            sentence.contains("payment-service · charge"),
            "{sentence}"
        );

        // Switch it off: an empty share box sends only `enabled:false`; the share stays 100.
        open_panel(&c, "payment.slow").await;
        apply_flag(&c, "payment.slow", false, "", "off").await;
        assert_eq!(
            gateway_flag(e, "payment.slow").await,
            json!({"enabled": false, "probability": 100}),
            "off, share kept"
        );
        let fast = plain_checkout(e, charge.clone()).await;
        assert_eq!(scenario_of(&fast), "checkout");
        let fast_charge = longest(&fast, &charge);
        println!(
            "flags panel: payment.slow on → charge {:.0} ms of {:.0} ms; off → charge {:.1} ms of {:.1} ms",
            ms(slow_charge),
            ms(slow.duration()),
            ms(fast_charge),
            ms(fast.duration())
        );
        assert!(
            fast_charge < Duration::from_millis(500) && fast_charge * 4 < slow_charge,
            "the next checkout is fast again: {} ms\n{}",
            ms(fast_charge),
            fast.tree()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slow_query_fix_from_the_panel_shrinks_the_query_span() {
    let e = env();
    let _turn = TURN.lock().await;
    e.with_browser(|c| async move {
        let e = env();
        let query = SpanMatcher::name("SELECT stock_movements").service("inventory-service");
        let card = "inventory.slow_query";
        open_panel(&c, card).await;
        js_until(
            &c,
            "the index starts absent",
            &format!(
                "document.querySelector(\"{}\") !== null",
                in_card(card, ".fix-state[data-indexed='false']")
            ),
        )
        .await;
        apply_flag(&c, card, true, "100", "on · 100 %").await;
        let before = plain_checkout(e, query.clone()).await;
        assert_eq!(scenario_of(&before), card);
        let unindexed = longest(&before, &query);

        // Fix it.
        let button = in_card(card, "#slow-query-fix");
        let label = c
            .find(Locator::Css(&button))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(label, "Add the index");
        webdriver_click(&c, Locator::Css(&button)).await;
        js_until(
            &c,
            "the panel shows the index present",
            &format!(
                "(() => {{ const s = document.querySelector(\"{}\"); const b = document.querySelector(\"{button}\"); \
                   return s !== null && b.textContent === 'Drop the index'; }})()",
                in_card(card, ".fix-state[data-indexed='true']")
            ),
        )
        .await;
        let after = plain_checkout(e, query.clone()).await;
        assert_eq!(scenario_of(&after), card);
        let indexed = longest(&after, &query);
        println!(
            "flags panel: SELECT stock_movements {:.1} ms without the index, {:.1} ms after \"Add the index\"",
            ms(unindexed),
            ms(indexed)
        );
        assert!(
            indexed * 2 < unindexed,
            "the query span shrinks: {:.1} ms → {:.1} ms\n{}",
            ms(unindexed),
            ms(indexed),
            after.tree()
        );

        // Back to the bug, flag off: the stack is left as it started.
        webdriver_click(&c, Locator::Css(&button)).await;
        js_until(
            &c,
            "the index dropped again",
            &format!(
                "document.querySelector(\"{}\") !== null",
                in_card(card, ".fix-state[data-indexed='false']")
            ),
        )
        .await;
        apply_flag(&c, card, false, "", "off").await;

        // The consumer-lag fix is a button too; the service reports the new concurrency.
        let lag = "kafka.consumer_lag";
        let consumer = |n: usize| in_card(lag, &format!(".fix-state[data-concurrency='{n}']"));
        js_until(&c, "one message at a time", &format!("document.querySelector(\"{}\") !== null", consumer(1))).await;
        webdriver_click(&c, Locator::Css(&in_card(lag, "#consumer-fix"))).await;
        js_until(&c, "eight at once", &format!("document.querySelector(\"{}\") !== null", consumer(8))).await;
        let settings = admin_get(e, format!("{}/admin/consumer", e.stack.urls.inventory)).await;
        assert_eq!(settings["concurrency"], 8);
        webdriver_click(&c, Locator::Css(&in_card(lag, "#consumer-fix"))).await;
        js_until(&c, "back to one", &format!("document.querySelector(\"{}\") !== null", consumer(1))).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_stays_on_the_server_and_the_services_require_it() {
    let e = env();
    let token = e.stack.admin_token.clone();
    for url in [
        format!("{}/admin/flags", e.stack.urls.gateway),
        format!("{}/admin/slow-query", e.stack.urls.inventory),
        format!("{}/admin/consumer", e.stack.urls.inventory),
        format!("{}/admin/provider", e.stack.urls.payment),
        format!("{}/admin/checkout", e.stack.urls.order),
    ] {
        let open = reqwest::get(&url).await.unwrap();
        assert_eq!(open.status(), 401, "{url} without the token");
        let body: Value = open.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{url}");
        admin_get(e, url).await;
    }
    e.with_browser(|c| async move {
        open_panel(&c, "payment.slow").await;
        let html = c.source().await.unwrap();
        assert!(
            html.contains("payment.slow") && html.contains("inventory.slow_query"),
            "the panel lists the catalogue"
        );
        assert!(!html.contains(&token), "the admin token is not in the page");
        let nav = c
            .find(Locator::Css("header.nav a[href='/flags']"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(nav, "Flags");
    })
    .await;
}
