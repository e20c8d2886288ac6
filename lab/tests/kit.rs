//! The trace-assertion kit on fixture JSON (a checkout trace shaped like the brief's, as the
//! collector's Jaeger API returns it): every assertion passes where it should, fails where it
//! should, and a failure prints the expectation and the whole trace as a tree. The waiting fetch
//! is tested against a tiny scripted HTTP server standing in for the query API.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use collector_api::{JaegerResponse, KeyValue, Trace};
use lab::spec::{CheckContext, Spec};
use lab::{Count, SpanKind, SpanMatcher, SpanStatus, TraceClient, TraceView, Wait};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn fixture() -> Trace {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/checkout.json"),
    )
    .unwrap();
    let mut r: JaegerResponse<Vec<Trace>> = serde_json::from_str(&text).unwrap();
    r.data.remove(0)
}

fn view(t: Trace) -> TraceView {
    TraceView::from_trace(t)
}

fn span_mut<'a>(t: &'a mut Trace, name: &str) -> &'a mut collector_api::Span {
    t.spans
        .iter_mut()
        .find(|s| s.operation_name == name)
        .unwrap()
}

const ALL: [&str; 4] = [
    "api-gateway",
    "order-service",
    "payment-service",
    "inventory-service",
];

#[test]
fn checkout_fixture_passes_seed_000_assertions() {
    let v = view(fixture());
    v.assert_services_present(&ALL).unwrap();
    v.assert_ends_before_starts(&"charge_payment".into(), &"reserve_inventory".into())
        .unwrap();
    v.assert_root_duration_below(Duration::from_secs(3))
        .unwrap();
    v.assert_no_error_spans().unwrap();
    v.assert_connected().unwrap();
    v.assert_error_spans_exactly(&[]).unwrap();
    assert_eq!(v.root().unwrap().name(), "POST /orders");
    assert_eq!(v.root().unwrap().service, "api-gateway");
}

#[test]
fn relations_kinds_attributes_events_and_counts() {
    let v = view(fixture());
    let consumer = SpanMatcher::name("process orders")
        .service("inventory-service")
        .kind(SpanKind::Consumer);
    let producer = SpanMatcher::name("send orders").kind(SpanKind::Producer);
    v.assert_span(&consumer).unwrap();
    v.assert_child_of(&consumer, &producer).unwrap();
    v.assert_linked(&consumer, &producer).unwrap();
    let e = v.assert_linked(&producer, &consumer).unwrap_err();
    assert!(
        e.found
            .contains("order-service/send orders PRODUCER links to [none]"),
        "{e}"
    );
    v.assert_descendant_of(&"stripe.create_charge".into(), &"charge_payment".into())
        .unwrap();
    v.assert_descendant_of(
        &"send_confirmation_email".into(),
        &SpanMatcher::name("POST /orders").service("api-gateway"),
    )
    .unwrap();
    v.assert_child_of(&"charge".into(), &"charge_payment".into())
        .unwrap_err();
    v.assert_descendant_of(&"reserve".into(), &"charge_payment".into())
        .unwrap_err();
    v.assert_attribute(&"process_order".into(), "order.item_count", 1)
        .unwrap();
    v.assert_attribute(&"charge_payment".into(), "payment.method", "card")
        .unwrap();
    v.assert_attribute(&"charge_payment".into(), "payment.method", "paypal")
        .unwrap_err();
    v.assert_attribute_present(&"INSERT orders".into(), "db.system.name")
        .unwrap();
    v.assert_attribute_present(&"validate_order".into(), "db.system.name")
        .unwrap_err();
    v.assert_span(
        &SpanMatcher::any()
            .attr("http.response.status_code", 201)
            .service("payment-service"),
    )
    .unwrap();
    v.assert_event(&"charge".into(), "payment_completed")
        .unwrap();
    v.assert_event(&"charge".into(), "payment_failed")
        .unwrap_err();
    v.assert_span_count(&SpanMatcher::any(), Count::exactly(21))
        .unwrap();
    v.assert_span_count(
        &SpanMatcher::any().kind(SpanKind::Client),
        Count::between(5, 6),
    )
    .unwrap();
    let db_spans = SpanMatcher::any().attr("db.system.name", "sqlite");
    v.assert_span_count(&db_spans, Count::at_most(2)).unwrap();
    v.assert_span_count(&db_spans, Count::at_most(1))
        .unwrap_err();
    v.assert_no_span(&"retry".into()).unwrap();
    v.assert_no_span(&"charge".into()).unwrap_err();
    v.assert_services_absent(&["email-service"]).unwrap();
    v.assert_services_absent(&["payment-service"]).unwrap_err();
    v.assert_duration(
        &"charge".into(),
        Some(Duration::from_millis(50)),
        Some(Duration::from_millis(70)),
    )
    .unwrap();
    v.assert_duration(&"charge".into(), None, Some(Duration::from_millis(10)))
        .unwrap_err();
    // The stripe call is the only CLIENT span in payment and has no child (external provider).
    v.assert_no_children(&"stripe.create_charge".into())
        .unwrap();
    v.assert_no_children(&"charge".into()).unwrap_err();
}

#[test]
fn tree_shows_every_span_indented_with_service_kind_duration_status_and_attributes() {
    let tree = view(fixture()).tree();
    assert!(
        tree.starts_with("trace 4bf92f3577b34da6a3ce929d0e0e4736 — 21 spans, 4 services"),
        "{tree}"
    );
    assert_eq!(tree.lines().count(), 22, "{tree}");
    let line = |needle: &str| {
        tree.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{tree}"))
            .to_string()
    };
    let root = line("api-gateway POST /orders");
    assert!(
        root.trim_start()
            .starts_with("+0µs api-gateway POST /orders"),
        "{root}"
    );
    assert!(root.contains("[SERVER] 120.0ms"), "{root}");
    assert!(root.contains("http.response.status_code=201"), "{root}");
    let stripe = line("stripe.create_charge");
    let charge = line("payment-service charge ");
    let indent = |l: &str| l.find("payment-service").unwrap();
    assert_eq!(
        indent(&stripe),
        indent(&charge) + 2,
        "child indented under its parent\n{tree}"
    );
    assert!(
        charge.contains("events=[payment_started, payment_completed]"),
        "{charge}"
    );
    assert!(line("charge_payment").contains("payment.method=card"));
    assert!(line("process orders").contains("[CONSUMER]"));
}

#[test]
fn ordering_failure_prints_the_expectation_and_the_whole_tree() {
    let mut t = fixture();
    // charge_payment now overlaps reserve_inventory (starts at +81 ms): a race.
    span_mut(&mut t, "charge_payment").duration = 75_000;
    let v = view(t);
    let err = v
        .assert_ends_before_starts(&"charge_payment".into(), &"reserve_inventory".into())
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(
            "expected: span \"charge_payment\" to end before span \"reserve_inventory\" starts"
        ),
        "{msg}"
    );
    assert!(msg.contains("order-service/charge_payment INTERNAL ends 6.0ms after order-service/reserve_inventory INTERNAL starts"), "{msg}");
    for name in [
        "POST /orders",
        "authenticate",
        "stripe.create_charge",
        "UPDATE stock",
        "send_confirmation_email",
    ] {
        assert!(msg.contains(name), "tree lacks {name}:\n{msg}");
    }
}

#[test]
fn missing_service_and_slow_root_fail_with_what_was_found() {
    let mut t = fixture();
    t.processes.get_mut("p3").unwrap().service_name = "payments-legacy".into();
    span_mut(&mut t, "POST /orders").duration = 3_200_000;
    let v = view(t);
    let e = v.assert_services_present(&ALL).unwrap_err();
    assert!(e.found.contains("missing [\"payment-service\"]"), "{e}");
    let e = v
        .assert_root_duration_below(Duration::from_secs(3))
        .unwrap_err();
    assert!(
        e.found
            .contains("api-gateway/POST /orders SERVER took 3.20s"),
        "{e}"
    );
}

fn mark_error(t: &mut Trace, name: &str) {
    let s = span_mut(t, name);
    s.tags.push(KeyValue::string("otel.status_code", "ERROR"));
    s.tags.push(KeyValue::bool("error", true));
}

#[test]
fn error_spans_none_or_exactly_these() {
    let mut t = fixture();
    mark_error(&mut t, "charge");
    mark_error(&mut t, "POST /charges");
    let v = view(t);
    let e = v.assert_no_error_spans().unwrap_err();
    assert!(e.found.contains("payment-service/charge INTERNAL"), "{e}");
    assert!(e.tree.contains("[INTERNAL] 62.0ms ERROR"), "{}", e.tree);
    let payment_errors = SpanMatcher::in_service("payment-service").status(SpanStatus::Error);
    v.assert_error_spans_exactly(std::slice::from_ref(&payment_errors))
        .unwrap();
    v.assert_error_spans_exactly(&["charge".into(), "POST /charges".into()])
        .unwrap();
    let e = v
        .assert_error_spans_exactly(&["charge".into()])
        .unwrap_err();
    assert!(
        e.found
            .contains("unexpected ERROR spans: payment-service/POST /charges SERVER"),
        "{e}"
    );
    let e = v
        .assert_error_spans_exactly(&[payment_errors, "reserve".into()])
        .unwrap_err();
    assert!(
        e.found.contains("no ERROR span for: span \"reserve\""),
        "{e}"
    );
}

#[test]
fn bottleneck_share_of_root_of_a_span_and_of_the_parent() {
    let mut t = fixture();
    // payment.slow: charge ~1200 ms of a ~1300 ms request.
    for (name, dur) in [
        ("POST /orders", 1_300_000),
        ("process_order", 1_280_000),
        ("charge_payment", 1_230_000),
        ("POST /charges", 1_215_000),
        ("charge", 1_200_000),
    ] {
        for s in t.spans.iter_mut().filter(|s| s.operation_name == name) {
            s.duration = dur;
        }
    }
    let v = view(t);
    v.assert_share(&"charge".into(), None, 0.8).unwrap();
    v.assert_share(&"charge".into(), Some(&"POST /charges".into()), 0.95)
        .unwrap();
    v.assert_share_of_parent(&"charge".into(), 0.9).unwrap();
    let e = v
        .assert_share(&"stripe.create_charge".into(), None, 0.8)
        .unwrap_err();
    assert!(
        e.found
            .contains("payment-service/stripe.create_charge CLIENT took 59.0ms of 1.30s = 4.5%"),
        "{e}"
    );

    // The happy fixture: charge is a small part of the request.
    let happy = view(fixture());
    happy.assert_share(&"charge".into(), None, 0.8).unwrap_err();
}

#[test]
fn the_critical_path_bottleneck_names_the_slow_payment() {
    let mut t = fixture();
    // payment.slow, consistently: every span from the root down to charge is stretched, the
    // HTTP client spans (told apart by the port they call) included.
    for (name, port, dur) in [
        ("POST /orders", None, 1_300_000),
        ("POST", Some(8081), 1_295_000),
        ("process_order", None, 1_280_000),
        ("charge_payment", None, 1_230_000),
        ("POST", Some(8082), 1_225_000),
        ("POST /charges", None, 1_215_000),
        ("charge", None, 1_200_000),
    ] {
        for s in t.spans.iter_mut().filter(|s| {
            s.operation_name == name
                && port.is_none_or(|p| s.tag("server.port").is_some_and(|v| v.value == p))
        }) {
            s.duration = dur;
        }
    }
    let v = view(t);
    v.assert_bottleneck("payment-service", None).unwrap();
    v.assert_bottleneck("payment-service", Some("charge"))
        .unwrap();
    let e = v.assert_bottleneck("inventory-service", None).unwrap_err();
    assert!(
        e.expected.contains("bottleneck to be in inventory-service"),
        "{e}"
    );
    assert!(
        e.found.starts_with("payment-service · charge: ")
            && e.found.ends_with(" of 1300 ms (87 %)"),
        "the viewer's sentence: {}",
        e.found
    );
    let e = v
        .assert_bottleneck("payment-service", Some("stripe.create_charge"))
        .unwrap_err();
    assert!(e.found.contains("payment-service · charge"), "{e}");

    // Both spellings of the spec assertion load; anything else is rejected.
    let spec = |a: &str| {
        lab::Spec::from_yaml(
            &format!("name: t\nrequest: {{ url: /orders }}\nassertions:\n  - {a}\n"),
            "inline",
        )
    };
    spec("bottleneck: payment-service").unwrap();
    spec("bottleneck: { service: payment-service, operation: charge }").unwrap();
    spec("bottleneck: { service: payment-service, op: charge }").unwrap_err();
}

#[test]
fn fragments_from_a_missing_parent() {
    let mut t = fixture();
    // payment's server span never arrived: its children point at a missing parent.
    t.spans.retain(|s| s.operation_name != "POST /charges");
    let v = view(t);
    let e = v.assert_connected().unwrap_err();
    assert!(e.found.contains("payment-service/charge INTERNAL"), "{e}");
    assert!(e.tree.contains("!! parent"), "{}", e.tree);
    v.assert_fragments(1).unwrap();
    assert_eq!(v.missing_parent_spans().len(), 1);
    // The fragment is rendered as its own top-level subtree.
    assert_eq!(v.roots().len(), 2);
    view(fixture()).assert_fragments(1).unwrap_err();
    view(fixture()).assert_fragments(0).unwrap();
}

fn specs_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("specs")
}

#[test]
fn every_shipped_spec_parses() {
    let specs = lab::spec::load_dir(&specs_dir()).unwrap();
    let names: Vec<&str> = specs.iter().map(|(_, s)| s.name.as_str()).collect();
    for scenario in [
        "checkout",
        "payment.slow",
        "provider.slow",
        "payment.declined",
        "inventory.slow_query",
        "inventory.out_of_stock",
        "propagation.broken",
        "kafka.consumer_lag",
    ] {
        assert!(
            names.contains(&scenario),
            "no spec for {scenario} in {names:?}"
        );
    }
}

#[tokio::test]
async fn checkout_spec_passes_on_the_checkout_fixture_and_fails_on_a_broken_one() {
    let spec = Spec::from_file(&specs_dir().join("checkout.yaml")).unwrap();
    assert_eq!(spec.request.expect_status, Some(201));
    let client = TraceClient::new("http://127.0.0.1:9");
    let ctx = CheckContext {
        client: &client,
        window_start_us: 0,
        window_end_us: 0,
        search_deadline: Duration::ZERO,
    };
    let good = view(fixture());
    for a in &spec.assertions {
        a.check(&good, &ctx)
            .await
            .unwrap_or_else(|e| panic!("{a:?}: {e}"));
    }
    let mut t = fixture();
    mark_error(&mut t, "UPDATE stock");
    let bad = view(t);
    let mut failures = Vec::new();
    for a in &spec.assertions {
        if let Err(e) = a.check(&bad, &ctx).await {
            failures.push(e);
        }
    }
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0]
            .to_string()
            .contains("inventory-service/UPDATE stock CLIENT")
    );
}

#[test]
fn spec_errors_name_the_key_path() {
    let yaml = "name: x\nrequest: {method: POST, url: /orders}\nassertions:\n  - services_present: [a]\n  - ends_before_starts: {first: a, thne: b}\n";
    let e = Spec::from_yaml(yaml, "typo.yaml").unwrap_err().to_string();
    assert!(
        e.contains("typo.yaml") && e.contains("assertions[1]") && e.contains("thne"),
        "{e}"
    );
    let e = Spec::from_yaml("name: [", "bad.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("bad.yaml: YAML"), "{e}");
}

/// A stand-in query API: answers `/api/traces/{id}` with the `n`-th scripted answer on the `n`-th
/// request (the last one repeats). `None` = 404.
async fn scripted_query_api(script: Vec<Option<Trace>>) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let answer = script[n.min(script.len() - 1)].clone();
            let mut buf = vec![0u8; 4096];
            let mut read = 0;
            while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") && read < buf.len() {
                match sock.read(&mut buf[read..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => read += k,
                }
            }
            let (status, body) = match answer {
                Some(t) => (
                    "200 OK",
                    serde_json::to_string(&JaegerResponse::ok(vec![t], 1)).unwrap(),
                ),
                None => (
                    "404 Not Found",
                    r#"{"data":null,"errors":[{"code":404,"msg":"trace not found"}]}"#.to_string(),
                ),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        }
    });
    (url, hits)
}

fn quick_wait() -> Wait {
    Wait {
        deadline: Duration::from_secs(10),
        quiet_period: Duration::from_millis(300),
        poll_interval: Duration::from_millis(20),
        ..Wait::default()
    }
}

#[tokio::test]
async fn fetch_waits_through_404_and_missing_parents_until_the_trace_settles() {
    let full = fixture();
    let mut partial = full.clone();
    partial
        .spans
        .retain(|s| s.operation_name != "POST /charges");
    let (url, hits) = scripted_query_api(vec![
        None,
        None,
        Some(partial.clone()),
        Some(partial.clone()),
        Some(partial),
        Some(full),
    ])
    .await;
    let started = Instant::now();
    let v = TraceClient::new(url)
        .fetch_trace("4bf92f3577b34da6a3ce929d0e0e4736", &quick_wait())
        .await
        .unwrap();
    assert!(v.is_complete());
    assert_eq!(v.len(), 21);
    v.assert_connected().unwrap();
    assert!(hits.load(Ordering::SeqCst) >= 6);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited for the quiet period"
    );
}

#[tokio::test]
async fn fetch_waits_for_late_spans_it_was_told_to_expect() {
    let full = fixture();
    let mut early = full.clone();
    early.spans.retain(|s| {
        s.operation_name != "process orders" && s.operation_name != "send_confirmation_email"
    });
    // Without the consumer the trace is connected: only `until_present` makes the fetch wait.
    let script = [vec![Some(early); 15], vec![Some(full)]].concat();
    let (url, _) = scripted_query_api(script).await;
    let wait =
        quick_wait().until_present(SpanMatcher::name("process orders").kind(SpanKind::Consumer));
    let v = TraceClient::new(url)
        .fetch_trace("4bf92f3577b34da6a3ce929d0e0e4736", &wait)
        .await
        .unwrap();
    assert!(v.is_complete());
    v.assert_span(&"process orders".into()).unwrap();
}

#[tokio::test]
async fn fetch_gives_up_at_the_deadline_and_says_so() {
    let mut broken = fixture();
    broken.spans.retain(|s| s.operation_name != "POST /charges");
    let (url, _) = scripted_query_api(vec![Some(broken.clone())]).await;
    let wait = Wait {
        deadline: Duration::from_millis(600),
        ..quick_wait()
    };
    let v = TraceClient::new(url.clone())
        .fetch_trace("4bf92f3577b34da6a3ce929d0e0e4736", &wait)
        .await
        .unwrap();
    assert!(!v.is_complete());
    assert!(
        v.tree().contains("INCOMPLETE after waiting"),
        "{}",
        v.tree()
    );
    // Fragments allowed: the same trace is complete once it settles.
    let v = TraceClient::new(url)
        .fetch_trace(
            "4bf92f3577b34da6a3ce929d0e0e4736",
            &quick_wait().allow_fragments(),
        )
        .await
        .unwrap();
    assert!(v.is_complete());

    let (url, _) = scripted_query_api(vec![None]).await;
    let err = TraceClient::new(url)
        .fetch_trace("00000000000000000000000000000001", &wait)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

/// A stand-in for the gateway and the query API on one port: the first route whose path prefix
/// matches the request answers (status, extra headers, body); anything else is a 404.
async fn routed_mock(routes: Vec<(&'static str, &'static str, String, String)>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let mut read = 0;
            while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") && read < buf.len() {
                match sock.read(&mut buf[read..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => read += k,
                }
            }
            let head = String::from_utf8_lossy(&buf[..read]).to_string();
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let (status, headers, body) = routes
                .iter()
                .find(|(prefix, ..)| path.starts_with(prefix))
                .map(|(_, s, h, b)| (*s, h.clone(), b.clone()))
                .unwrap_or((
                    "404 Not Found",
                    String::new(),
                    r#"{"data":null,"errors":[{"code":404,"msg":"trace not found"}]}"#.into(),
                ));
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{headers}connection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        }
    });
    url
}

const FIXTURE_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn gateway_route() -> (&'static str, &'static str, String, String) {
    (
        "/orders",
        "201 Created",
        format!("x-trace-id: {FIXTURE_TRACE}\r\n"),
        "{}".into(),
    )
}

fn spec_with(wait: &str, assertions: &str) -> Spec {
    Spec::from_yaml(
        &format!("name: t\nrequest: {{ method: POST, url: /orders }}\nwait: {wait}\nassertions:\n{assertions}"),
        "inline.yaml",
    )
    .unwrap()
}

#[tokio::test]
async fn a_spec_fails_on_a_trace_still_incomplete_at_its_deadline_unless_it_says_so() {
    let mut broken = fixture();
    broken.spans.retain(|s| s.operation_name != "POST /charges");
    let trace = serde_json::to_string(&JaegerResponse::ok(vec![broken], 1)).unwrap();
    let url = routed_mock(vec![
        gateway_route(),
        ("/api/traces/", "200 OK", String::new(), trace),
    ])
    .await;
    let runner = lab::SpecRunner::new(&url, &url);
    let wait = "{ deadline_ms: 600, quiet_period_ms: 100, poll_interval_ms: 50 }";
    // Every assertion would pass on the partial trace; the spec still fails.
    let out = runner
        .run(&spec_with(wait, "  - services_present: [api-gateway]\n"))
        .await;
    let err = out.result.unwrap_err().to_string();
    assert!(
        err.contains("still incomplete at the deadline")
            && err.contains("point to a parent that never arrived")
            && err.contains("payment-service/charge"),
        "{err}"
    );
    // Said explicitly: a partial trace is expected.
    let wait =
        "{ deadline_ms: 600, quiet_period_ms: 100, poll_interval_ms: 50, allow_incomplete: true }";
    let out = runner
        .run(&spec_with(wait, "  - services_present: [api-gateway]\n"))
        .await;
    assert!(
        out.passed(),
        "{:?}",
        out.result.err().map(|e| e.to_string())
    );
}

#[tokio::test]
async fn a_trace_dropped_by_tail_sampling_is_reported_as_such() {
    let decision = format!(
        r#"{{"data":[{{"trace_id":"{FIXTURE_TRACE}","decision":"not_sampled","policy":null,"trigger":"decision_wait","span_count":21,"decided_at_ms":1}}]}}"#
    );
    let url = routed_mock(vec![
        gateway_route(),
        (
            "/api/v1/sampling/decisions",
            "200 OK",
            String::new(),
            decision,
        ),
    ])
    .await;
    let runner = lab::SpecRunner::new(&url, &url);
    let wait = "{ deadline_ms: 300, quiet_period_ms: 100, poll_interval_ms: 50 }";
    let out = runner
        .run(&spec_with(wait, "  - services_present: [api-gateway]\n"))
        .await;
    let err = out.result.unwrap_err().to_string();
    assert!(
        err.contains("not found")
            && err.contains("tail sampling dropped it (no policy wanted it, after 21 spans")
            && err.contains("/api/v1/sampling/decisions?traceID="),
        "{err}"
    );
    // Without a recorded decision the plain "not found" stays.
    let url = routed_mock(vec![gateway_route()]).await;
    let out = lab::SpecRunner::new(&url, &url)
        .run(&spec_with(wait, "  - services_present: [api-gateway]\n"))
        .await;
    let err = out.result.unwrap_err().to_string();
    assert!(
        err.contains("not found") && !err.contains("sampling"),
        "{err}"
    );
}

#[test]
fn assertions_that_check_nothing_are_rejected_at_load() {
    for (a, key, hint) in [
        (
            "no_error_spans: false",
            "no_error_spans",
            "error_spans_exactly",
        ),
        ("connected: false", "connected", "fragments"),
    ] {
        let yaml = format!(
            "name: x\nrequest: {{ url: /orders }}\nassertions:\n  - services_present: [a]\n  - {a}\n"
        );
        let e = Spec::from_yaml(&yaml, "nothing.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("nothing.yaml")
                && e.contains(&format!("assertions[1].{key}"))
                && e.contains("asserts nothing")
                && e.contains(hint),
            "{e}"
        );
    }
    Spec::from_yaml(
        "name: x\nrequest: { url: /orders }\nassertions:\n  - no_error_spans: true\n  - connected: true\n",
        "fine.yaml",
    )
    .unwrap();
}
