//! The viewer in real headless Chromium (Debian's `chromium` + `chromium-driver`, driven over
//! WebDriver by fantoccini), against the real stack: `lab::Stack` starts the collector, the four
//! services, the embedded Kafka and the `viewer` binary, exactly as `make demo` does.
//!
//! What it proves: a `payment.slow` checkout is found through the search form, its trace page names
//! payment-service in the bottleneck sentence, a clicked span shows its attributes, a span link is
//! followed; the page is hydrated (client-side interactions work); names and values with HTML in
//! them stay text; a 10,000-span trace opens and scrolls with only a screenful of rows in the DOM;
//! a broken propagation is flagged as a detached fragment. Screenshots of the search and trace
//! pages are written to `$TRACELAB_SCREENSHOTS` (`make screenshots` sets `docs/images`), else to
//! `target/viewer-e2e/screenshots`.

mod support;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fantoccini::Locator;
use lab::SpanMatcher;
use serde_json::{Value, json};
use support::{
    Env, checkout, click, js_until, now_ns, otlp_span, resource, screenshot, send_trace,
    webdriver_click,
};

/// What the set-up stored for the tests.
struct Ids {
    /// The payment.slow checkout.
    slow: String,
    /// A trace whose names and values are HTML and script.
    xss: String,
    /// 10,000 spans.
    big: String,
    /// The gateway's half of a propagation.broken checkout.
    broken: String,
}

fn env() -> &'static Env<Ids> {
    static ENV: OnceLock<Result<Env<Ids>, String>> = OnceLock::new();
    support::shared(
        &ENV,
        |_| {},
        async |stack, query| {
            // A happy and a declined checkout, so the search page has some variety.
            checkout(stack, query, "checkout", true).await?;
            checkout(stack, query, "payment.declined", false).await?;
            let slow = checkout(stack, query, "payment.slow", true).await?;
            let from = lab::client::now_us();
            let broken = checkout(stack, query, "propagation.broken", false).await?;
            // The callee's half must be stored too before the page looks for it.
            query
                .find_detached_fragments(
                    &broken,
                    &SpanMatcher::name("POST /charges").service("payment-service"),
                    from,
                    lab::client::now_us(),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|e| e.to_string())?
                .first()
                .ok_or("propagation.broken: payment's detached trace never arrived")?;
            let xss = send_trace(stack, query, xss_trace()).await?;
            let big = send_trace(stack, query, big_trace()).await?;
            Ok(Ids {
                slow,
                xss,
                big,
                broken,
            })
        },
    )
}

const XSS: &str = "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\">";

fn xss_trace() -> (String, Vec<Value>) {
    let trace = format!("{:032x}", now_ns() as u128 * 7 + 0xabc);
    let t = now_ns();
    let attr = json!({ "key": "evil", "value": { "stringValue": XSS } });
    let spans = vec![
        otlp_span(
            &trace,
            "00000000000000a1",
            "",
            &format!("GET {XSS}"),
            t,
            t + 5_000_000,
            vec![attr.clone()],
        ),
        otlp_span(
            &trace,
            "00000000000000a2",
            "00000000000000a1",
            "child",
            t + 1_000_000,
            t + 2_000_000,
            vec![attr.clone()],
        ),
        // Its parent never arrives: the trace is incomplete.
        otlp_span(
            &trace,
            "00000000000000a3",
            "00000000000000ff",
            "orphan",
            t + 2_000_000,
            t + 3_000_000,
            vec![],
        ),
    ];
    (trace, vec![resource("<b>evil-service</b>", spans)])
}

/// 10,000 spans: a root, 99 groups under it, 100 steps under each group, over 10 s. In display
/// order the last row is `step 98.99`.
fn big_trace() -> (String, Vec<Value>) {
    let trace = format!("{:032x}", now_ns() as u128 * 13 + 0xb16);
    let t = now_ns() - 20_000_000_000;
    let id = |k: usize| format!("{k:016x}");
    let mut spans = vec![otlp_span(
        &trace,
        &id(1),
        "",
        "bulk root",
        t,
        t + 10_000_000_000,
        vec![],
    )];
    for g in 0..99usize {
        let gid = id(2 + g * 101);
        let gs = t + g as u64 * 100_000_000;
        spans.push(otlp_span(
            &trace,
            &gid,
            &id(1),
            &format!("group {g}"),
            gs,
            gs + 99_000_000,
            vec![],
        ));
        for j in 0..100usize {
            let s = gs + j as u64 * 900_000;
            spans.push(otlp_span(
                &trace,
                &id(3 + g * 101 + j),
                &gid,
                &format!("step {g}.{j}"),
                s,
                s + 800_000,
                vec![],
            ));
        }
    }
    assert_eq!(spans.len(), 10_000);
    (trace, vec![resource("bulk-service", spans)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_the_slow_payment_and_its_trace_names_the_bottleneck() {
    let e = env();
    e.with_browser(|c| async move {
        // Every checkout: the declined one in red on the scatter plot and in the list.
        c.goto(&format!(
            "{}/search?service=api-gateway&operation=POST%20/orders",
            e.viewer
        ))
        .await
        .unwrap();
        js_until(
            &c,
            "the checkouts",
            "document.querySelectorAll('li.result').length >= 4",
        )
        .await;
        let red = c
            .execute(
                "return document.querySelectorAll('circle.dot.err').length",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            red.as_u64().unwrap() >= 1,
            "the declined checkout is red on the plot"
        );
        screenshot(&c, "search").await;

        c.goto(&format!("{}/search", e.viewer)).await.unwrap();
        let tags = c.find(Locator::Id("tags")).await.unwrap();
        tags.send_keys("tracelab.scenario=payment.slow")
            .await
            .unwrap();
        webdriver_click(&c, Locator::Id("find")).await;
        let sel = format!("li.result[data-trace-id='{}'] a.result-link", e.slow);
        js_until(
            &c,
            "the payment.slow trace in the results",
            &format!("document.querySelector(\"{sel}\")"),
        )
        .await;
        let url = c.current_url().await.unwrap();
        assert!(
            url.as_str().contains("tags="),
            "the search is in the URL: {url}"
        );

        webdriver_click(&c, Locator::Css(&sel)).await;

        let sentence = js_until(
            &c,
            "the bottleneck sentence",
            "document.querySelector('#bottleneck')?.innerText",
        )
        .await;
        let sentence = sentence.as_str().unwrap().to_string();
        assert!(sentence.contains("payment-service · "), "{sentence}");
        assert!(sentence.contains('%'), "{sentence}");
        let crit = js_until(
            &c,
            "critical-path marks",
            "document.querySelectorAll('.row .crit').length",
        )
        .await;
        assert!(
            crit.as_u64().unwrap() >= 3,
            "the critical path is drawn over several spans"
        );
        screenshot(&c, "trace").await;

        // A span's details.
        click(&c, ".row[data-operation='charge']").await;
        let attrs = js_until(
            &c,
            "the charge span's attributes",
            "document.querySelector('#span-panel #panel-attributes')?.innerText",
        )
        .await;
        let attrs = attrs.as_str().unwrap();
        assert!(
            attrs.contains("tracelab.scenario") && attrs.contains("payment.slow"),
            "{attrs}"
        );
        assert!(
            c.current_url().await.unwrap().as_str().contains("span="),
            "the selection is in the URL"
        );
        screenshot(&c, "trace-span").await;

        // The consumer's span link leads to its producer.
        click(&c, ".row[data-operation='process orders']").await;
        js_until(
            &c,
            "the consumer's links",
            "document.querySelector('#panel-links a')",
        )
        .await;
        let target = c
            .execute(
                "return document.querySelector('#panel-links a').dataset.linkSpan",
                vec![],
            )
            .await
            .unwrap();
        webdriver_click(&c, Locator::Css("#panel-links a")).await;
        let target = target.as_str().unwrap().to_string();
        js_until(
            &c,
            "the linked producer selected",
            &format!("document.querySelector('#span-panel')?.dataset.spanId === '{target}'"),
        )
        .await;
        let op = c
            .find(Locator::Id("panel-operation"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(op, "send orders");
        assert!(
            c.current_url()
                .await
                .unwrap()
                .as_str()
                .ends_with(&format!("span={target}"))
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_hydrated_and_client_side_interactions_work() {
    let e = env();
    e.with_browser(|c| async move {
        // Picking a service loads its operations in the browser, with no page load. Until the
        // wasm has hydrated the page the change event does nothing, so it is sent again.
        c.goto(&format!("{}/search", e.viewer)).await.unwrap();
        c.execute("window.__same_page = true; return 1", vec![])
            .await
            .unwrap();
        js_until(
            &c,
            "operations of payment-service after choosing it",
            "(() => { const s = document.querySelector('#service'); if (!s) return false; \
              if (s.value !== 'payment-service') { s.value = 'payment-service'; } \
              s.dispatchEvent(new Event('change')); \
              const o = document.querySelector('#operation'); \
              return o && [...o.options].some(x => x.value === 'POST /charges'); })()",
        )
        .await;
        let same = c
            .execute("return window.__same_page === true", vec![])
            .await
            .unwrap();
        assert_eq!(
            same,
            json!(true),
            "no page load happened: the client did it"
        );

        // Collapse and expand in the waterfall.
        c.goto(&format!("{}/trace/{}", e.viewer, e.slow))
            .await
            .unwrap();
        let before = js_until(
            &c,
            "waterfall rows",
            "document.querySelectorAll('.row').length",
        )
        .await;
        webdriver_click(&c, Locator::Css(".row .toggle")).await;
        js_until(
            &c,
            "the root collapsed to one row",
            "document.querySelectorAll('.row').length === 1",
        )
        .await;
        webdriver_click(&c, Locator::Id("expand-all")).await;
        js_until(
            &c,
            "all rows back",
            &format!("document.querySelectorAll('.row').length === {before}"),
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_in_names_and_values_is_shown_as_text() {
    let e = env();
    e.with_browser(|c| async move {
        c.goto(&format!("{}/trace/{}", e.viewer, e.xss)).await.unwrap();
        js_until(&c, "rows", "document.querySelectorAll('.row').length >= 3").await;
        click(&c, ".row[data-span-id='00000000000000a2']").await;
        let attrs = js_until(&c, "attributes", "document.querySelector('#panel-attributes')?.innerText").await;
        assert!(attrs.as_str().unwrap().contains(XSS), "the value shows literally: {attrs}");
        let title = c.find(Locator::Id("trace-title")).await.unwrap().text().await.unwrap();
        assert!(title.contains("<b>evil-service</b>") && title.contains("<script>"), "{title}");
        let injected = c
            .execute(
                "return [window.__xss, document.querySelectorAll('main script, main img, main b').length]",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(injected, json!([null, 0]), "no script ran, no element was injected");
        let badge = js_until(&c, "the incomplete-trace badge", "document.querySelector('#incomplete')?.innerText").await;
        assert!(badge.as_str().unwrap().contains("1 span points to a missing parent"), "{badge}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_span_trace_opens_and_scrolls() {
    let e = env();
    e.with_browser(|c| async move {
        let started = Instant::now();
        c.goto(&format!("{}/trace/{}", e.viewer, e.big)).await.unwrap();
        // performance.now() is ms since navigation start: the first waterfall rows' paint time.
        let painted = js_until(
            &c,
            "the first rows of the 10k-span trace",
            "document.querySelectorAll('.row').length > 0 && performance.now()",
        )
        .await;
        let wall = started.elapsed();
        eprintln!(
            "[viewer] 10,000-span trace: first rows {:.0} ms after navigation start ({:.0} ms wall incl. WebDriver)",
            painted.as_f64().unwrap(),
            wall.as_secs_f64() * 1000.0
        );
        let count = c.find(Locator::Id("span-count")).await.unwrap().text().await.unwrap();
        assert_eq!(count, "10000");
        let in_dom = c.execute("return document.querySelectorAll('.row').length", vec![]).await.unwrap();
        assert!(in_dom.as_u64().unwrap() < 200, "virtualised: {in_dom} rows in the DOM");

        // Scroll to the end in steps, as a wheel would, and read the last span.
        let t = Instant::now();
        js_until(
            &c,
            "the last span after scrolling",
            "(() => { const s = document.querySelector('#waterfall'); s.scrollTop = s.scrollTop + 20000; \
              s.dispatchEvent(new Event('scroll')); \
              return [...document.querySelectorAll('.row .op')].some(o => o.textContent === 'step 98.99'); })()",
        )
        .await;
        eprintln!("[viewer] scrolled 10,000 rows to the end in {:.0} ms", t.elapsed().as_secs_f64() * 1000.0);
        let in_dom = c.execute("return document.querySelectorAll('.row').length", vec![]).await.unwrap();
        assert!(in_dom.as_u64().unwrap() < 200, "still virtualised at the end: {in_dom}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_context_is_flagged_as_a_detached_fragment() {
    let e = env();
    e.with_browser(|c| async move {
        c.goto(&format!("{}/trace/{}", e.viewer, e.broken))
            .await
            .unwrap();
        let hint = js_until(
            &c,
            "the detached-fragment hint",
            "document.querySelector('#fragments')?.innerText",
        )
        .await;
        let hint = hint.as_str().unwrap();
        assert!(hint.contains("payment-service: POST /charges"), "{hint}");
    })
    .await;
}
