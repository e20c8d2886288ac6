//! Checkout-like spans shared by the store and micro benches: 10-span traces across the four
//! services (6 attributes per span, an event, 2% errors, 1% slow), grouped into OTLP
//! `ResourceSpans` per service as the batch processor hands them to the exporter.

use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

const SERVICES: [&str; 4] = [
    "api-gateway",
    "order-service",
    "payment-service",
    "inventory-service",
];
const OPS: [&str; 10] = [
    "POST /orders",
    "authenticate",
    "POST",
    "process_order",
    "validate_order",
    "INSERT orders",
    "charge",
    "stripe.create_charge",
    "reserve",
    "UPDATE stock",
];

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

pub fn trace_id(n: u64) -> Vec<u8> {
    let mut t = vec![0u8; 16];
    t[..8].copy_from_slice(&0x7472_6163_656c_6162u64.to_be_bytes());
    t[8..].copy_from_slice(&n.to_be_bytes());
    t
}

/// One 10-span trace, spans grouped per service.
pub fn checkout_trace(n: u64, base_ns: u64) -> Vec<(usize, Span)> {
    let start = base_ns + n * 1_000_000; // one trace per ms of wall time
    let error = n.is_multiple_of(50);
    let slow = n.is_multiple_of(97);
    (0..10u64)
        .map(|i| {
            let svc = [0, 0, 0, 1, 1, 1, 2, 2, 3, 3][i as usize];
            let dur = if slow && i < 8 {
                2_500_000_000
            } else {
                (10 - i) * 3_000_000
            };
            let mut s = Span {
                trace_id: trace_id(n),
                span_id: (n * 16 + i + 1).to_be_bytes().to_vec(),
                parent_span_id: if i == 0 {
                    vec![]
                } else {
                    (n * 16 + i).to_be_bytes().to_vec()
                },
                name: OPS[i as usize].into(),
                kind: [2, 1, 3, 2, 1, 3, 1, 3, 2, 3][i as usize],
                start_time_unix_nano: start + i * 1_000_000,
                end_time_unix_nano: start + i * 1_000_000 + dur,
                attributes: vec![
                    kv("http.request.method", Value::StringValue("POST".into())),
                    kv(
                        "http.response.status_code",
                        Value::IntValue(if error { 402 } else { 201 }),
                    ),
                    kv("order.id", Value::StringValue(format!("ORD-{n}"))),
                    kv("order.item_count", Value::IntValue((n % 5 + 1) as i64)),
                    kv(
                        "customer.tier",
                        Value::StringValue(
                            ["gold", "basic", "basic", "silver"][(n % 4) as usize].into(),
                        ),
                    ),
                    kv(
                        "tracelab.scenario",
                        Value::StringValue(
                            if error {
                                "payment.declined"
                            } else {
                                "checkout"
                            }
                            .into(),
                        ),
                    ),
                ],
                status: (error && i == 6).then(|| Status {
                    code: 2,
                    message: "card declined".into(),
                }),
                ..Default::default()
            };
            if i == 6 {
                s.events.push(Event {
                    time_unix_nano: start + 7_000_000,
                    name: "payment_started".into(),
                    ..Default::default()
                });
            }
            (svc, s)
        })
        .collect()
}

pub fn batch_of(spans: Vec<(usize, Span)>) -> Vec<ResourceSpans> {
    let mut per: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    for (svc, s) in spans {
        per[svc].push(s);
    }
    per.into_iter()
        .enumerate()
        .filter(|(_, v)| !v.is_empty())
        .map(|(i, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", Value::StringValue(SERVICES[i].into())),
                    kv("service.version", Value::StringValue("0.1.0".into())),
                    kv("deployment.environment", Value::StringValue("lab".into())),
                    kv("telemetry.sdk.language", Value::StringValue("rust".into())),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "tracelab".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect()
}
