//! The whole checkout system behind the gateway (real order-, payment- and inventory-service, SQLite in
//! memory, Kafka on librdkafka's MockCluster): the brief's cross-service trace from the gateway's
//! SERVER span to inventory's Kafka CONSUMER span, and the distinctive shape and timing of every
//! scenario. Timings are printed (`cargo test -p api-gateway --test checkout -- --nocapture`) and
//! asserted only as shares of their parent, never as absolute times.

mod common;

use std::time::Duration;

use common::*;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;
use rdkafka::mocking::MockCluster;

fn gateway_root(spans: &[SpanData]) -> &SpanData {
    spans
        .iter()
        .find(|s| s.name == "POST /orders" && is_root(s))
        .expect("the gateway's SERVER span is the root")
}

fn share(part: &SpanData, whole: &SpanData) -> f64 {
    duration(part).as_secs_f64() / duration(whole).as_secs_f64().max(1e-9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkout_is_one_trace_from_gateway_to_kafka_consumer() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("orders", 1, 1).expect("topic");
    let brokers = cluster.bootstrap_servers();
    let stack = FullStack::start(Some(&brokers)).await;

    let resp = stack.checkout("tok_test_123", None).await;
    assert_eq!(resp.status(), 201);
    assert!(resp.headers().contains_key("traceresponse"));
    let trace = trace_id(&resp);
    let order: contracts::orders::Order = resp.json().await.unwrap();
    assert_eq!(order.status, contracts::orders::OrderStatus::Confirmed);

    let spans = stack
        .trace(
            &trace,
            &["send orders", "process orders", "send_confirmation_email"],
        )
        .await;
    let root = gateway_root(&spans);
    assert_eq!(kind(root), SpanKind::Server);
    assert_eq!(attr(root, "tracelab.scenario").as_deref(), Some("checkout"));
    child(&spans, root, "authenticate");
    let to_order = child(&spans, root, "POST");
    assert_eq!(kind(to_order), SpanKind::Client);
    let order_server = child(&spans, to_order, "POST /orders");
    let process = child(&spans, order_server, "process_order");
    for name in ["validate_order", "calculate_total", "INSERT orders"] {
        child(&spans, process, name);
    }
    let charge = child(&spans, process, "charge_payment");
    let charges = child(&spans, child(&spans, charge, "POST"), "POST /charges");
    let payment_charge = child(&spans, charges, "charge");
    assert_eq!(
        attr(payment_charge, "tracelab.scenario").as_deref(),
        Some("checkout")
    );
    let stripe = child(&spans, payment_charge, "stripe.create_charge");
    assert_eq!(kind(stripe), SpanKind::Client);
    let reserve = child(&spans, process, "reserve_inventory");
    assert!(charge.end_time <= reserve.start_time);
    let reservations = child(&spans, child(&spans, reserve, "POST"), "POST /reservations");
    child(&spans, reservations, "reserve");

    let producer = child(&spans, process, "send orders");
    assert_eq!(kind(producer), SpanKind::Producer);
    let consumer = child(&spans, producer, "process orders");
    assert_eq!(kind(consumer), SpanKind::Consumer);
    assert!(
        consumer
            .links
            .iter()
            .any(|l| l.span_context.span_id() == producer.span_context.span_id()),
        "the consumer links to the producer too"
    );
    assert_eq!(
        attr(consumer, "messaging.consumer.group.name").as_deref(),
        Some("inventory-service")
    );
    let email = span(&spans, "send_confirmation_email");
    assert!(is_descendant(&spans, email, consumer));
    assert!(spans.iter().all(|s| !is_error(s)), "no ERROR span");
    println!(
        "checkout: request {} ms, {} spans in one trace",
        ms(duration(root)),
        spans.len()
    );
}

fn is_descendant(spans: &[SpanData], span: &SpanData, ancestor: &SpanData) -> bool {
    let mut current = span;
    for _ in 0..64 {
        if is_child_of(current, ancestor) {
            return true;
        }
        match spans
            .iter()
            .find(|s| s.span_context.span_id() == current.parent_span_id)
        {
            Some(parent) => current = parent,
            None => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payment_slow_makes_charge_the_bottleneck() {
    let stack = FullStack::start(None).await;
    let resp = stack.checkout("tok_test_123", Some("payment.slow")).await;
    assert_eq!(resp.status(), 201);
    let spans = stack.trace(&trace_id(&resp), &["charge"]).await;
    let root = gateway_root(&spans);
    let charge = span(&spans, "charge");
    println!(
        "payment.slow: charge {} ms of a {} ms request ({:.0} %)",
        ms(duration(charge)),
        ms(duration(root)),
        100.0 * share(charge, root)
    );
    assert_eq!(
        attr(charge, "tracelab.scenario").as_deref(),
        Some("payment.slow")
    );
    assert!(share(charge, root) > 0.6, "charge dominates the request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provider_slow_puts_the_time_in_the_provider_call() {
    let stack = FullStack::start(None).await;
    let resp = stack.checkout("tok_test_123", Some("provider.slow")).await;
    assert_eq!(resp.status(), 201);
    let spans = stack
        .trace(&trace_id(&resp), &["stripe.create_charge"])
        .await;
    let root = gateway_root(&spans);
    let payment = span(&spans, "POST /charges");
    let stripe = span(&spans, "stripe.create_charge");
    println!(
        "provider.slow: stripe.create_charge {} ms inside payment {} ms, request {} ms",
        ms(duration(stripe)),
        ms(duration(payment)),
        ms(duration(root))
    );
    assert!(
        share(stripe, payment) > 0.8,
        "the provider call dominates payment"
    );
    assert!(share(payment, root) > 0.6, "payment dominates the request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn payment_declined_is_a_402_error_trace() {
    let stack = FullStack::start(None).await;
    for (token, scenario) in [
        ("tok_test_123", Some("payment.declined")),
        ("tok_declined", None),
    ] {
        let resp = stack.checkout(token, scenario).await;
        assert_eq!(resp.status(), 402, "{token}");
        let trace = trace_id(&resp);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "card_declined");
        let spans = stack
            .trace(&trace, &["charge", "stripe.create_charge"])
            .await;
        let charge = span(&spans, "charge");
        assert!(is_error(charge));
        assert!(
            charge.events.iter().any(|e| e.name == "exception"),
            "exception event on charge"
        );
        assert!(is_error(span(&spans, "charge_payment")));
        assert!(!spans.iter().any(|s| s.name == "reserve_inventory"));
        println!(
            "payment.declined ({token}): request {} ms, {} ERROR spans",
            ms(duration(gateway_root(&spans))),
            spans.iter().filter(|s| is_error(s)).count()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn out_of_stock_is_a_409_with_a_refund() {
    let stack = FullStack::start(None).await;
    // A real shortage: SOLDOUT-1 has no stock (the scenario header only labels the request).
    let resp = stack
        .client
        .post(stack.url("/orders"))
        .header("x-tracelab-scenario", "inventory.out_of_stock")
        .json(&serde_json::json!({
            "items": [{"sku": "SOLDOUT-1", "qty": 1}],
            "payment": {"method": "card", "token": "tok_test_123"}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let trace = trace_id(&resp);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "out_of_stock");
    let spans = stack
        .trace(&trace, &["compensate_payment", "POST /refunds"])
        .await;
    let reserve = span(&spans, "reserve_inventory");
    assert!(is_error(reserve));
    let compensate = span(&spans, "compensate_payment");
    println!(
        "inventory.out_of_stock: reserve_inventory {} ms (ERROR), compensate_payment {} ms, request {} ms",
        ms(duration(reserve)),
        ms(duration(compensate)),
        ms(duration(gateway_root(&spans)))
    );
    let order_id = attr(span(&spans, "process_order"), "order.id").unwrap();
    let order: contracts::orders::Order = stack
        .client
        .get(stack.url(&format!("/orders/{order_id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(order.status, contracts::orders::OrderStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inventory_slow_query_dominates_inventory_time() {
    // A movement history large enough for the unindexed scan to show (inventory's own tests go deeper).
    let stack = FullStack::start_with(None, |c| c.seed_movements = 200_000).await;
    let resp = stack
        .checkout("tok_test_123", Some("inventory.slow_query"))
        .await;
    assert_eq!(resp.status(), 201);
    let spans = stack.trace(&trace_id(&resp), &["reserve"]).await;
    let server = span(&spans, "POST /reservations");
    let slowest_db = spans
        .iter()
        .filter(|s| kind(s) == SpanKind::Client && attr(s, "db.system.name").is_some())
        .filter(|s| is_descendant(&spans, s, server))
        .max_by_key(|s| duration(s))
        .expect("inventory's db spans");
    println!(
        "inventory.slow_query: `{}` {} ms of inventory's {} ms",
        slowest_db.name,
        ms(duration(slowest_db)),
        ms(duration(server))
    );
    assert!(
        share(slowest_db, server) > 0.5,
        "one query dominates inventory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn propagation_broken_leaves_payment_in_another_trace() {
    let stack = FullStack::start(None).await;
    let resp = stack
        .checkout("tok_test_123", Some("propagation.broken"))
        .await;
    assert_eq!(resp.status(), 201);
    let trace = trace_id(&resp);
    let order: contracts::orders::Order = resp.json().await.unwrap();
    let spans = stack.trace(&trace, &["POST /reservations"]).await;
    assert!(
        !spans
            .iter()
            .any(|s| s.name == "POST /charges" || s.name == "charge")
    );
    let telemetry = stack.telemetry.clone();
    let fragment = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let found = telemetry.all_spans().into_iter().find(|s| {
                s.name == "charge" && attr(s, "order.id").as_deref() == Some(order.id.as_str())
            });
            if found.is_some() || std::time::Instant::now() >= deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap()
    .expect("payment's spans exist, in some trace");
    let other = fragment.span_context.trace_id().to_string();
    assert_ne!(other, trace, "the trace broke into fragments");
    let fragment_spans = stack.trace(&other, &["POST /charges"]).await;
    println!(
        "propagation.broken: 2 fragments, {} + {} spans",
        spans.len(),
        fragment_spans.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_consumer_lag_slows_the_consumer() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("orders", 1, 1).expect("topic");
    let brokers = cluster.bootstrap_servers();
    let stack = FullStack::start(Some(&brokers)).await;
    let resp = stack
        .checkout("tok_test_123", Some("kafka.consumer_lag"))
        .await;
    assert_eq!(resp.status(), 201);
    let spans = stack
        .trace(
            &trace_id(&resp),
            &["process orders", "send_confirmation_email"],
        )
        .await;
    let root = gateway_root(&spans);
    let consumer = span(&spans, "process orders");
    assert_eq!(
        attr(span(&spans, "send_confirmation_email"), "tracelab.scenario").as_deref(),
        Some("kafka.consumer_lag"),
        "the decision reached the consumer through Kafka headers"
    );
    println!(
        "kafka.consumer_lag: process orders {} ms (request {} ms)",
        ms(duration(consumer)),
        ms(duration(root))
    );
    assert!(
        duration(consumer) > duration(root),
        "the consumer now takes longer than the whole request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retried_checkout_with_the_same_key_is_one_order() {
    let stack = FullStack::start(None).await;
    let post = |body: serde_json::Value| {
        stack
            .client
            .post(stack.url("/orders"))
            .header("idempotency-key", "gw-retry-1")
            .json(&body)
            .send()
    };
    let first = post(order_body("tok_test_123")).await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: serde_json::Value = first.json().await.unwrap();
    let second = post(order_body("tok_test_123")).await.unwrap();
    assert_eq!(second.status(), 201);
    assert_eq!(
        second.headers()["idempotent-replayed"],
        "true",
        "the replay marker is relayed"
    );
    let second: serde_json::Value = second.json().await.unwrap();
    assert_eq!(first, second, "the same order");
    let mut other = order_body("tok_test_123");
    other["items"][0]["qty"] = serde_json::json!(2);
    let reused = post(other).await.unwrap();
    assert_eq!(reused.status(), 422);
    let err: serde_json::Value = reused.json().await.unwrap();
    assert_eq!(err["error"]["code"], "idempotency_key_reused");
}
