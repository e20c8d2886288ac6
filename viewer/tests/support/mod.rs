//! The browser tests' harness, shared by every `viewer/tests/browser*.rs` binary: a real
//! `lab::Stack` (collector, the four services, the embedded Kafka and the `viewer` binary, as
//! `make demo` starts them), chromedriver driving Debian's headless `chromium` over WebDriver
//! (fantoccini), and the helpers the tests share — checkouts through the gateway, OTLP/JSON
//! traces sent straight to the collector, waiting on the page, clicks and screenshots.
//!
//! Each test binary keeps one [`Env`] in a static ([`shared`]): the stack starts once per binary
//! and every test of it opens its own browser session ([`Env::with_browser`]).

// Each test binary uses a part of the harness.
#![allow(dead_code)]

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use lab::launcher::Reaper;
use lab::{SpanKind, SpanMatcher, Stack, StackOptions, TraceClient, Wait};
use serde_json::{Value, json};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Upper bound for any one thing the browser must show.
pub const UI_DEADLINE: Duration = Duration::from_secs(30);

/// A running stack with a viewer, a chromedriver, and what the test binary's set-up produced
/// (`T`: trace ids and the like, reachable through `Deref`).
pub struct Env<T> {
    pub stack: Stack,
    pub viewer: String,
    pub driver: String,
    pub query: TraceClient,
    pub data: T,
    _reaper: Reaper,
    _chromedriver: tokio::process::Child,
    /// Runs the stack's and chromedriver's tasks; outlives every test.
    _rt: tokio::runtime::Runtime,
}

impl<T> Deref for Env<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.data
    }
}

/// The environment in `cell`, started on first use by [`start`] with `configure` and `setup`.
/// A failed start fails every test of the binary with the same message.
pub fn shared<T, C, S>(
    cell: &'static OnceLock<Result<Env<T>, String>>,
    configure: C,
    setup: S,
) -> &'static Env<T>
where
    T: Send + Sync + 'static,
    C: FnOnce(&mut StackOptions) + Send + 'static,
    S: AsyncFnOnce(&Stack, &TraceClient) -> Result<T, String> + Send + 'static,
{
    match cell.get_or_init(|| {
        // Its own thread: the stack gets a runtime of its own, outside the test's.
        std::thread::spawn(move || start(configure, setup))
            .join()
            .unwrap_or_else(|_| Err("start-up panicked".into()))
    }) {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    }
}

/// `target/` of the running test binary (`target/<profile>/deps/browser-HASH`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// Starts the stack (the test defaults of `StackOptions`, with a viewer, then `configure`),
/// chromedriver, and runs `setup` against the stack.
pub fn start<T, C, S>(configure: C, setup: S) -> Result<Env<T>, String>
where
    C: FnOnce(&mut StackOptions),
    S: AsyncFnOnce(&Stack, &TraceClient) -> Result<T, String>,
{
    for bin in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(bin).is_file() {
            return Err(format!(
                "{bin} is missing: the browser tests need Debian's chromium and chromium-driver \
                 (`apt-get install chromium chromium-driver`; .ci/run installs them)"
            ));
        }
    }
    let target = target_dir();
    let bins = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent().map(Path::to_path_buf))
        .ok_or("bin dir")?;
    for b in ["viewer", "collector", "api-gateway", "tracelab"] {
        if !bins.join(b).is_file() {
            return Err(format!(
                "{} missing: run `make test` (it builds the binaries and the viewer's assets first)",
                bins.join(b).display()
            ));
        }
    }
    let binary = std::env::current_exe()
        .ok()
        .and_then(|e| e.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let dir = target
        .join("viewer-e2e")
        .join(format!("run-{binary}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (stack, viewer, driver, query, reaper, chromedriver, data) = rt.block_on(async {
        let mut opts = StackOptions::for_tests(&bins, &dir).map_err(|e| e.to_string())?;
        opts.viewer = true;
        configure(&mut opts);
        let stack = Stack::start(opts)
            .await
            .map_err(|e| format!("stack did not start (logs in {}): {e}", dir.display()))?;
        let viewer = stack
            .urls
            .viewer
            .clone()
            .ok_or("the stack started no viewer")?;

        // chromedriver in its own process group, watched by a reaper: it and the Chromium it
        // starts die with this test binary even though the statics are never dropped.
        let port = free_port()?;
        let mut reaper = Reaper::spawn(&bins.join("tracelab")).map_err(|e| e.to_string())?;
        let chromedriver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting chromedriver: {e}"))?;
        if let Some(pid) = chromedriver.id() {
            reaper.watch(pid).await.map_err(|e| e.to_string())?;
        }
        let driver = format!("http://127.0.0.1:{port}");
        wait_until("chromedriver ready", Duration::from_secs(20), || async {
            reqwest::get(format!("{driver}/status"))
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        })
        .await?;

        let query = TraceClient::new(stack.urls.query.clone());
        let data = setup(&stack, &query).await?;
        Ok::<_, String>((stack, viewer, driver, query, reaper, chromedriver, data))
    })?;
    Ok(Env {
        stack,
        viewer,
        driver,
        query,
        data,
        _reaper: reaper,
        _chromedriver: chromedriver,
        _rt: rt,
    })
}

impl<T> Env<T> {
    /// A new headless Chromium session (its own profile directory).
    pub async fn browser(&self) -> Client {
        let profile = target_dir().join("viewer-e2e").join(format!(
            "chrome-{}-{}",
            std::process::id(),
            now_ns()
        ));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1400,900",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        let caps = caps.as_object().cloned().expect("object");
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.driver)
            .await
            .expect("a WebDriver session in headless Chromium")
    }

    /// Runs `f` with a browser session, closed whatever the outcome, so no Chromium outlives a
    /// failed test.
    pub async fn with_browser<F, Fut>(&self, f: F)
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let c = self.browser().await;
        let outcome = tokio::spawn(f(c.clone())).await;
        let _ = c.close().await;
        if let Err(e) = outcome {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Polls `f` every 100 ms until it returns `Some`, or fails naming `what` after `deadline`.
pub async fn wait_until<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if start.elapsed() > deadline {
            return Err(format!("{what}: not within {deadline:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Places an order through the gateway with `scenario` and waits for its complete trace (with
/// the Kafka consumer's span when `with_consumer`). Returns the trace id.
pub async fn checkout(
    stack: &Stack,
    query: &TraceClient,
    scenario: &str,
    with_consumer: bool,
) -> Result<String, String> {
    let resp = reqwest::Client::new()
        .post(format!("{}/orders", stack.urls.gateway))
        .header("X-Tracelab-Scenario", scenario)
        .json(&json!({"items":[{"sku":"LAPTOP-1","qty":1}],"payment":{"method":"card","token":"tok_test_123"}}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let id = resp
        .headers()
        .get("x-trace-id")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("{scenario}: no X-Trace-Id (status {})", resp.status()))?
        .to_string();
    let mut wait = Wait::new(Duration::from_secs(40), Duration::from_millis(800));
    if with_consumer {
        wait = wait.until_present(SpanMatcher::name("process orders").kind(SpanKind::Consumer));
    }
    query
        .fetch_trace(&id, &wait)
        .await
        .map_err(|e| format!("{scenario} trace {id}: {e}"))?;
    Ok(id)
}

/// Sends a trace over OTLP/HTTP JSON as an exporter would: 1,000 spans a request, retrying a
/// request the collector's memory limiter refuses (503) after the delay it names, and letting
/// the store catch up every 10,000 spans, so a debug-build collector is not flooded. Waits
/// until all of the trace's spans are stored.
pub async fn send_trace(
    stack: &Stack,
    query: &TraceClient,
    (trace_id, resource_spans): (String, Vec<Value>),
) -> Result<String, String> {
    let http = reqwest::Client::new();
    let stored_url = format!(
        "{}/api/v1/traces/{trace_id}/spans?limit=1",
        query.base_url()
    );
    // At least `n` spans stored, or exactly `n` when `exact`.
    let stored = |n: usize, exact: bool| {
        let (http, url, trace_id) = (http.clone(), stored_url.clone(), trace_id.clone());
        async move {
            wait_until(
                &format!("{n} spans of {trace_id} stored"),
                Duration::from_secs(120),
                || async {
                    let v: Value = http.get(&url).send().await.ok()?.json().await.ok()?;
                    let total = v["total"].as_u64()?;
                    (if exact {
                        total == n as u64
                    } else {
                        total >= n as u64
                    })
                    .then_some(())
                },
            )
            .await
        }
    };
    let mut sent = 0usize;
    for rs in resource_spans {
        let spans = rs["scopeSpans"][0]["spans"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for chunk in spans.chunks(1000) {
            let mut one = rs.clone();
            one["scopeSpans"][0]["spans"] = Value::Array(chunk.to_vec());
            let body = json!({ "resourceSpans": [one] });
            let mut attempt = 0;
            loop {
                let r = http
                    .post(format!("{}/v1/traces", stack.urls.otlp_http))
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if r.status().is_success() {
                    break;
                }
                attempt += 1;
                if r.status().as_u16() != 503 || attempt > 60 {
                    return Err(format!(
                        "OTLP export refused: {} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    ));
                }
                // Backoff: the limiter's RetryInfo says 1 s; what it waits for is the store draining.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            sent += chunk.len();
            if sent.is_multiple_of(10_000) {
                stored(sent, false).await?;
            }
        }
    }
    stored(sent, true).await?;
    Ok(trace_id)
}

pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
}

/// One OTLP/JSON `resourceSpans` entry of `service` holding `spans`.
pub fn resource(service: &str, spans: Vec<Value>) -> Value {
    json!({
        "resource": { "attributes": [ { "key": "service.name", "value": { "stringValue": service } } ] },
        "scopeSpans": [ { "scope": { "name": "viewer-browser-test" }, "spans": spans } ]
    })
}

/// One OTLP/JSON span (kind INTERNAL); `parent` empty for a root.
pub fn otlp_span(
    trace: &str,
    id: &str,
    parent: &str,
    name: &str,
    start: u64,
    end: u64,
    attrs: Vec<Value>,
) -> Value {
    json!({
        "traceId": trace, "spanId": id, "parentSpanId": parent, "name": name, "kind": 1,
        "startTimeUnixNano": start.to_string(), "endTimeUnixNano": end.to_string(),
        "attributes": attrs
    })
}

/// Runs a JS expression until it returns a truthy value; returns that value.
pub async fn js_until(c: &Client, what: &str, expr: &str) -> Value {
    let script = format!("return ({expr});");
    let start = Instant::now();
    loop {
        match c.execute(&script, vec![]).await {
            Ok(v) if !v.is_null() && v != json!(false) && v != json!(0) && v != json!("") => {
                return v;
            }
            _ => {}
        }
        if start.elapsed() > UI_DEADLINE {
            let text = c
                .execute(
                    "return document.body ? document.body.innerText.slice(0, 1500) : ''",
                    vec![],
                )
                .await
                .unwrap_or_default();
            panic!(
                "{what}: not within {UI_DEADLINE:?}; the page shows:\n{}",
                text.as_str().unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A real pointer click through WebDriver (for elements that are not recycled).
pub async fn webdriver_click(c: &Client, l: Locator<'_>) {
    c.find(l)
        .await
        .expect("element to click")
        .click()
        .await
        .expect("click");
}

/// A click dispatched in the page: waterfall rows are recycled as the list scrolls, so a WebDriver
/// element reference can point at another row by the time it is clicked.
pub async fn click(c: &Client, css: &str) {
    let css_js = serde_json::to_string(css).expect("json");
    js_until(
        c,
        &format!("clicking {css}"),
        &format!("(() => {{ const e = document.querySelector({css_js}); if (!e) return false; e.click(); return true; }})()"),
    )
    .await;
}

/// `$TRACELAB_SCREENSHOTS` (`make screenshots` sets `docs/images`), else
/// `target/viewer-e2e/screenshots`.
pub fn screenshot_dir() -> PathBuf {
    std::env::var_os("TRACELAB_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("viewer-e2e").join("screenshots"))
}

/// Writes the page as `NAME.png` into [`screenshot_dir`].
pub async fn screenshot(c: &Client, name: &str) {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}
