//! Trace compare in headless Chromium against the real stack (the harness in `support`): a plain
//! `checkout` and a `payment.slow` checkout are ticked in the search list and compared. The row of
//! payment-service's charge operation shows the slow payment's extra time — the exact B − A of the
//! two spans' durations as the query API reports them — the header names it as the biggest change,
//! and the provider attempts only the slow checkout made are marked added. The same comparison
//! opens by URL and through the `/compare` form; a malformed pair gets a message. Screenshot
//! `compare`.

mod support;

use std::sync::OnceLock;

use fantoccini::{Client, Locator};
use lab::{SpanKind, TraceView};
use support::{Env, checkout, js_until, screenshot, webdriver_click};

struct Ids {
    /// The plain checkout (older: trace A).
    plain: String,
    /// The payment.slow checkout (trace B).
    slow: String,
}

fn env() -> &'static Env<Ids> {
    static ENV: OnceLock<Result<Env<Ids>, String>> = OnceLock::new();
    support::shared(
        &ENV,
        |_| {},
        async |stack, query| {
            let plain = checkout(stack, query, "checkout", true).await?;
            let slow = checkout(stack, query, "payment.slow", true).await?;
            Ok(Ids { plain, slow })
        },
    )
}

/// payment-service's own operation under its `POST /charges` server span — read from the trace,
/// not assumed — and its duration in µs.
struct Charge {
    operation: String,
    duration_us: i64,
    /// CLIENT calls under it (one per provider attempt).
    calls: usize,
}

async fn charge_of(e: &Env<Ids>, id: &str) -> Charge {
    let trace = e
        .query
        .get_trace(id)
        .await
        .expect("query API")
        .expect("stored trace");
    let v = TraceView::from_trace(trace);
    let server = v
        .spans()
        .find(|s| s.service == "payment-service" && s.kind() == SpanKind::Server)
        .expect("payment-service's server span");
    let own: Vec<_> = v
        .children_of(server)
        .into_iter()
        .filter(|s| s.service == "payment-service" && s.kind() == SpanKind::Internal)
        .collect();
    assert_eq!(own.len(), 1, "one operation under {}", server.label());
    let charge = own[0];
    Charge {
        operation: charge.name().to_string(),
        duration_us: charge.span.duration as i64,
        calls: v
            .children_of(charge)
            .iter()
            .filter(|s| s.kind() == SpanKind::Client)
            .count(),
    }
}

/// `+1203 ms` → 1203.
fn shown_ms(text: &str) -> i64 {
    text.trim()
        .trim_end_matches("ms")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("a delta in whole ms: {text:?}"))
}

async fn text_of(c: &Client, id: &str) -> String {
    c.find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .text()
        .await
        .expect("text")
}

/// Checks the open comparison page: the charge row's delta, the header, the added rows.
async fn check_compare_page(c: &Client, a: &Charge, b: &Charge) {
    assert_eq!(
        a.operation, b.operation,
        "both traces name the operation alike"
    );
    let op = &a.operation;
    let want_us = b.duration_us - a.duration_us;
    let row = format!(
        ".cmp-row[data-service='payment-service'][data-operation='{op}'][data-occurrence='0']"
    );
    let text = js_until(
        c,
        "payment's charge row with its delta",
        &format!("document.querySelector(\"{row} .cmp-delta\")?.innerText"),
    )
    .await;
    let text = text.as_str().unwrap().to_string();
    assert!(text.starts_with('+'), "slower in B: {text}");
    let ms = shown_ms(&text);
    assert!(ms > 800, "the slow payment's extra time: {text}");
    assert!(
        (ms * 1000 - want_us).abs() <= 1000,
        "shown {text}, query API says B − A = {want_us} µs"
    );
    let exact = c
        .execute(
            &format!("return document.querySelector(\"{row}\").dataset.deltaUs"),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(exact.as_str(), Some(want_us.to_string().as_str()));
    eprintln!(
        "[compare] payment-service · {op}: A {} µs, B {} µs, shown {text} (B − A = {want_us} µs)",
        a.duration_us, b.duration_us
    );

    let name = text_of(c, "cmp-biggest-name").await;
    assert_eq!(name, format!("payment-service · {op}"));
    let biggest = text_of(c, "cmp-biggest-delta").await;
    assert_eq!(biggest, text.trim(), "the header quotes the row's delta");

    // The retries: provider calls only B made are added rows under payment-service.
    assert!(b.calls > a.calls, "payment.slow retries the provider");
    let added = c
        .execute(
            "return document.querySelectorAll(\".cmp-row.added[data-service='payment-service']\").length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(added.as_u64(), Some((b.calls - a.calls) as u64));
    let counted = text_of(c, "cmp-added").await;
    assert_eq!(counted, (b.calls - a.calls).to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_checkouts_ticked_in_search_compare_and_show_the_payment_delta() {
    let e = env();
    e.with_browser(|c| async move {
        let a = charge_of(e, &e.plain).await;
        let b = charge_of(e, &e.slow).await;
        c.goto(&format!(
            "{}/search?service=api-gateway&operation=POST%20/orders",
            e.viewer
        ))
        .await
        .unwrap();
        // Tick both; until the page is hydrated the change event does nothing, so it is re-sent.
        let tick = format!(
            "(() => {{ for (const id of ['{}', '{}']) {{ \
               const b = document.querySelector(`.cmp-pick input[data-trace-id='${{id}}']`); \
               if (!b) return false; b.checked = true; b.dispatchEvent(new Event('change')); }} \
             return document.querySelector('#compare-link')?.getAttribute('href'); }})()",
            e.slow, e.plain
        );
        let href = js_until(&c, "the compare link for two ticked traces", &tick).await;
        assert_eq!(
            href.as_str(),
            Some(format!("/trace/{}...{}", e.plain, e.slow).as_str()),
            "the older trace is A"
        );
        webdriver_click(&c, Locator::Id("compare-link")).await;
        check_compare_page(&c, &a, &b).await;
        let url = c.current_url().await.unwrap();
        assert!(
            url.path()
                .ends_with(&format!("/trace/{}...{}", e.plain, e.slow)),
            "{url}"
        );
        // The picture shows the charge row and the added provider attempts below it.
        js_until(
            &c,
            "the rows scrolled to the biggest change",
            "(() => { const s = document.querySelector('#compare-rows'); \
               const r = document.querySelector('.cmp-row.biggest'); if (!s || !r) return false; \
               s.scrollTop = r.offsetTop - 4 * 26; s.dispatchEvent(new Event('scroll')); \
               const a = document.querySelector('.cmp-row.added'); \
               return a && a.getBoundingClientRect().bottom <= s.getBoundingClientRect().bottom; })()",
        )
        .await;
        screenshot(&c, "compare").await;

        // The same comparison, opened by its URL.
        c.goto(&format!("{}/trace/{}...{}", e.viewer, e.plain, e.slow))
            .await
            .unwrap();
        // performance.now(): ms since navigation start, when the aligned rows are on the page.
        let shown = js_until(
            &c,
            "the aligned rows",
            "document.querySelector('.cmp-row[data-change]') && performance.now()",
        )
        .await;
        eprintln!(
            "[compare] /trace/A...B by URL: aligned rows {:.0} ms after navigation start",
            shown.as_f64().unwrap_or_default()
        );
        check_compare_page(&c, &a, &b).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compare_form_leads_to_the_comparison_and_bad_ids_are_named() {
    let e = env();
    e.with_browser(|c| async move {
        let a = charge_of(e, &e.plain).await;
        let b = charge_of(e, &e.slow).await;
        c.goto(&format!("{}/compare", e.viewer)).await.unwrap();
        c.find(Locator::Id("compare-a"))
            .await
            .unwrap()
            .send_keys(&e.plain)
            .await
            .unwrap();
        c.find(Locator::Id("compare-b"))
            .await
            .unwrap()
            .send_keys(&e.slow)
            .await
            .unwrap();
        webdriver_click(&c, Locator::Id("compare-submit")).await;
        check_compare_page(&c, &a, &b).await;
        let url = c.current_url().await.unwrap();
        assert!(
            url.path()
                .ends_with(&format!("/trace/{}...{}", e.plain, e.slow)),
            "the form redirects to the compare URL: {url}"
        );

        c.goto(&format!("{}/trace/{}...not-a-trace", e.viewer, e.plain))
            .await
            .unwrap();
        let msg = js_until(
            &c,
            "the message for a malformed pair",
            "document.querySelector('#compare-error')?.innerText",
        )
        .await;
        let msg = msg.as_str().unwrap();
        assert!(
            msg.contains("trace B") && msg.contains("not-a-trace"),
            "{msg}"
        );
    })
    .await;
}
