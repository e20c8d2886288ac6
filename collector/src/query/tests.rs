//! The query API served for real on 127.0.0.1:0 over a temp-dir store filled through the
//! `tracelab` exporter, hit with reqwest: Jaeger routes compared to the shape of a Jaeger answer,
//! `/api/v1` routes (a second, empty store registered beside it), and the error shapes.

use std::sync::Arc;

use collector_api::jaeger::{JaegerResponse, Trace};
use collector_api::v1::{
    Decision, DecisionTrigger, LogsResponse, SamplingDecision, SamplingStatsResponse, SpanWindow,
    StoresResponse, TraceLookupResponse, TraceSummaries,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use serde_json::{Value as J, json};

use crate::connectors::spanmetrics::red::RedRegistry;
use crate::exporters::tracelab::{TracelabExporter, TracelabExporterConfig};
use crate::pipeline::Consumer;
use crate::query::StoreRegistry;
use crate::sampling::{PolicyVote, SamplingRegistry};
use crate::store::StoreConfig;

/// The answer of Jaeger 1.x's query service to `GET /api/traces/{id}` (HotROD trace, trimmed):
/// the shape our answers must have.
const JAEGER_TRACE_FIXTURE: &str = r#"{
  "data": [{
    "traceID": "5c2ae4e7d66d1d7a",
    "spans": [{
      "traceID": "5c2ae4e7d66d1d7a", "spanID": "5c2ae4e7d66d1d7a", "flags": 1,
      "operationName": "HTTP GET /dispatch",
      "references": [{"refType": "CHILD_OF", "traceID": "5c2ae4e7d66d1d7a", "spanID": "3a7cb9d1b1aa5e21"}],
      "startTime": 1576167440640281, "duration": 670432,
      "tags": [{"key": "span.kind", "type": "string", "value": "server"},
               {"key": "http.status_code", "type": "int64", "value": 200}],
      "logs": [{"timestamp": 1576167440640294,
                "fields": [{"key": "event", "type": "string", "value": "HTTP request received"}]}],
      "processID": "p1", "warnings": null
    }],
    "processes": {"p1": {"serviceName": "frontend",
                         "tags": [{"key": "hostname", "type": "string", "value": "host1"}]}},
    "warnings": null
  }],
  "total": 0, "limit": 0, "offset": 0, "errors": null
}"#;

/// Every key of `fixture` exists in `actual` with the same JSON type (recursively; arrays compare
/// their first elements; `null` in the fixture and tag values accept anything).
fn assert_same_shape(fixture: &J, actual: &J, path: &str) {
    match (fixture, actual) {
        (J::Null, _) => {}
        // A tag's value has the type its `type` names; any JSON type is a valid shape.
        _ if path.ends_with(".value") => {}
        (J::Object(f), J::Object(a)) => {
            for (k, fv) in f {
                // `processes` is keyed by process id; compare values, not ids.
                if path.ends_with(".processes") {
                    let av = a
                        .values()
                        .next()
                        .unwrap_or_else(|| panic!("{path} is empty"));
                    assert_same_shape(fv, av, &format!("{path}.*"));
                    continue;
                }
                let av = a
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} missing in {actual}"));
                assert_same_shape(fv, av, &format!("{path}.{k}"));
            }
        }
        (J::Array(f), J::Array(a)) => {
            if let (Some(fe), Some(ae)) = (f.first(), a.first()) {
                assert_same_shape(fe, ae, &format!("{path}[0]"));
            }
        }
        (J::String(_), J::String(_)) | (J::Number(_), J::Number(_)) | (J::Bool(_), J::Bool(_)) => {}
        (f, a) => panic!("{path}: Jaeger has {f}, we answered {a}"),
    }
}

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        - 60_000_000_000
}

const TRACE: [u8; 16] = [
    0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36,
];
const TRACE_HEX: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn span(id: u8, parent: u8, name: &str, kind: i32, start_ms: u64, dur_ms: u64, base: u64) -> Span {
    Span {
        trace_id: TRACE.to_vec(),
        span_id: vec![0, 0, 0, 0, 0, 0, 0, id],
        parent_span_id: if parent == 0 {
            vec![]
        } else {
            vec![0, 0, 0, 0, 0, 0, 0, parent]
        },
        name: name.into(),
        kind,
        start_time_unix_nano: base + start_ms * 1_000_000,
        end_time_unix_nano: base + (start_ms + dur_ms) * 1_000_000,
        ..Default::default()
    }
}

fn resource_spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                kv("service.name", Value::StringValue(service.into())),
                kv("host.name", Value::StringValue("lab".into())),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

struct Api {
    base: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dirs: [tempfile::TempDir; 2],
}

impl Api {
    async fn get(&self, path: &str) -> (u16, J) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// Sends a JSON body; the status and the body as text (a 204 has none).
    async fn send(&self, method: reqwest::Method, path: &str, body: String) -> (u16, String) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().await.unwrap())
    }

    async fn put(&self, path: &str, body: String) -> (u16, String) {
        self.send(reqwest::Method::PUT, path, body).await
    }

    async fn post(&self, path: &str, body: String) -> (u16, J) {
        let (status, text) = self.send(reqwest::Method::POST, path, body).await;
        (status, serde_json::from_str(&text).unwrap())
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn exporter_in(dir: &std::path::Path) -> TracelabExporter {
    let cfg = TracelabExporterConfig {
        storage: StoreConfig {
            directory: dir.to_path_buf(),
            ..Default::default()
        },
        ..Default::default()
    };
    TracelabExporter::start(&cfg).await.unwrap()
}

/// Exporter + query API of store `tracelab` over a temp dir, with the payment.declined-like
/// checkout trace stored, and an empty store `tracelab/empty` registered beside it.
async fn start() -> (Api, Arc<SamplingRegistry>) {
    let dir = tempfile::tempdir().unwrap();
    let empty_dir = tempfile::tempdir().unwrap();
    let mut samplers = SamplingRegistry::default();
    let stats = samplers.tail_sampling("tail_sampling", "traces").unwrap();
    // As the pipeline builder notes them: the store it persists into, its latency policy.
    stats.add_store("tracelab");
    stats.set_latency_threshold(Some(("slow".into(), 1000)));
    let samplers = Arc::new(samplers);
    let exporter = exporter_in(dir.path()).await;
    let empty = exporter_in(empty_dir.path()).await;
    let base = now_ns();
    let mut root = span(1, 0, "POST /orders", 2, 0, 1300, base);
    root.attributes = vec![kv("http.response.status_code", Value::IntValue(402))];
    let mut charge = span(3, 2, "charge", 2, 20, 1200, base);
    charge.status = Some(Status {
        code: 2,
        message: "card declined".into(),
    });
    charge.events = vec![Event {
        time_unix_nano: base + 30_000_000,
        name: "payment_failed".into(),
        ..Default::default()
    }];
    Consumer::<ResourceSpans>::consume(
        &exporter,
        vec![
            resource_spans(
                "api-gateway",
                vec![root, span(2, 1, "POST", 3, 5, 1290, base)],
            ),
            resource_spans("payment-service", vec![charge]),
        ],
    )
    .await
    .unwrap();
    let log = |span: u8, body: &str| LogRecord {
        time_unix_nano: base + 40_000_000,
        severity_text: "ERROR".into(),
        severity_number: 17,
        body: Some(AnyValue {
            value: Some(Value::StringValue(body.into())),
        }),
        trace_id: TRACE.to_vec(),
        span_id: vec![0, 0, 0, 0, 0, 0, 0, span],
        ..Default::default()
    };
    Consumer::<ResourceLogs>::consume(
        &exporter,
        vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv(
                    "service.name",
                    Value::StringValue("payment-service".into()),
                )],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![log(3, "card declined"), log(1, "request failed")],
                ..Default::default()
            }],
            ..Default::default()
        }],
    )
    .await
    .unwrap();
    stats.register_policies(&[("errors".into(), "status_code".into())]);
    let decision = SamplingDecision {
        trace_id: TRACE_HEX.into(),
        decision: Decision::Sampled,
        policy: Some("errors".into()),
        trigger: DecisionTrigger::DecisionWait,
        span_count: 3,
        decided_at_ms: (base / 1_000_000) as i64,
        error: true,
        duration_us: 1_300_000,
        processor: "tail_sampling".into(),
    };
    exporter.decision_queue().push(decision.clone());
    stats.record(
        decision,
        &[PolicyVote {
            policy: 0,
            sampled: true,
        }],
        Some(0),
    );
    // shutdown persists pending decisions into the store.
    Consumer::<ResourceSpans>::shutdown(&exporter)
        .await
        .unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let samplers_for_server = samplers.clone();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut stores = StoreRegistry::default();
    stores.insert("tracelab", exporter.store());
    stores.insert("tracelab/empty", empty.store());
    let stores = Arc::new(stores);
    tokio::spawn(async move {
        super::serve(
            listener,
            "tracelab",
            stores,
            samplers_for_server,
            Arc::new(RedRegistry::default()),
            async {
                let _ = rx.await;
            },
        )
        .await
    });
    let api = Api {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        stop: Some(tx),
        _dirs: [dir, empty_dir],
    };
    (api, samplers)
}

#[tokio::test]
async fn jaeger_routes_answer_in_jaegers_shapes() {
    let (api, _stats) = start().await;

    let (st, body) = api.get(&format!("/api/traces/{TRACE_HEX}")).await;
    assert_eq!(st, 200);
    let fixture: J = serde_json::from_str(JAEGER_TRACE_FIXTURE).unwrap();
    assert_same_shape(&fixture, &body, "$");
    let resp: JaegerResponse<Vec<Trace>> = serde_json::from_value(body).unwrap();
    let t = &resp.data[0];
    assert_eq!(t.spans.len(), 3);
    let charge = t.spans_named("charge").next().unwrap();
    assert!(charge.is_error());
    assert_eq!(charge.logs[0].event_name(), Some("payment_failed"));
    assert_eq!(t.service_of(charge), Some("payment-service"));

    let (st, body) = api.get("/api/services").await;
    assert_eq!(st, 200);
    assert_eq!(body["data"], json!(["api-gateway", "payment-service"]));
    assert_eq!(body["total"], 2);

    let (_, body) = api.get("/api/services/api-gateway/operations").await;
    assert_eq!(body["data"], json!(["POST", "POST /orders"]));
    let (_, body) = api
        .get("/api/operations?service=api-gateway&spanKind=server")
        .await;
    assert_eq!(
        body["data"],
        json!([{"name": "POST /orders", "spanKind": "server"}])
    );

    let tags = urlencode(r#"{"http.response.status_code":"402"}"#);
    let (st, body) = api
        .get(&format!(
            "/api/traces?service=api-gateway&tags={tags}&minDuration=1s&lookback=1h&limit=20"
        ))
        .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["data"][0]["traceID"], TRACE_HEX);
    let (_, body) = api
        .get("/api/traces?service=api-gateway&minDuration=2s&lookback=1h")
        .await;
    assert_eq!(
        body["data"],
        json!([]),
        "minDuration excludes the 1.3s trace"
    );
    let (_, body) = api
        .get(&format!("/api/traces?traceID={TRACE_HEX}&traceID=1"))
        .await;
    assert_eq!(
        body["data"].as_array().unwrap().len(),
        1,
        "multi-get skips unknown ids"
    );

    let (_, body) = api
        .get(&format!(
            "/api/dependencies?endTs={}&lookback=3600000",
            now_ns() / 1_000_000 + 120_000
        ))
        .await;
    assert_eq!(
        body["data"],
        json!([{"parent": "api-gateway", "child": "payment-service", "callCount": 1}])
    );
    let (_, body) = api.get("/api/dependencies?endTs=1000&lookback=1000").await;
    assert_eq!(body["data"], json!([]), "outside the window");

    // Errors: Jaeger's shape.
    let (st, body) = api
        .get("/api/traces/0123456789abcdef0123456789abcdef")
        .await;
    assert_eq!(st, 404);
    assert_eq!(
        body,
        json!({"data": null, "total": 0, "limit": 0, "offset": 0, "errors": [{"code": 404, "msg": "trace not found"}]})
    );
    let (st, body) = api.get("/api/traces/not-hex").await;
    assert_eq!(st, 400);
    assert!(
        body["errors"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("malformed trace id")
    );
    let (st, body) = api.get("/api/traces?service=x&minDuration=soon").await;
    assert_eq!(st, 400);
    assert!(
        body["errors"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("minDuration")
    );
    let (st, _) = api.get("/api/operations").await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn dependencies_count_cross_service_calls() {
    let (api, _stats) = start().await;
    // The stored trace's payment span's parent (span 2) belongs to the gateway: one call.
    let (_, body) = api.get("/api/dependencies?lookback=3600000").await;
    let deps: Vec<collector_api::DependencyLink> =
        serde_json::from_value(body["data"].clone()).unwrap();
    assert_eq!(deps.len(), 1);
    assert_eq!(
        (
            deps[0].parent.as_str(),
            deps[0].child.as_str(),
            deps[0].call_count
        ),
        ("api-gateway", "payment-service", 1)
    );
}

#[tokio::test]
async fn v1_routes_serve_sampling_windows_summaries_and_logs() {
    let (api, samplers) = start().await;

    let (st, body) = api.get("/api/v1/sampling").await;
    assert_eq!(st, 200);
    let s: SamplingStatsResponse = serde_json::from_value(body).unwrap();
    assert_eq!(s, samplers.snapshot(100));
    assert_eq!(
        (s.policies[0].name.as_str(), s.policies[0].kept),
        ("errors", 1)
    );
    assert_eq!(s.recent[0].policy.as_deref(), Some("errors"));
    assert_eq!(s.processors.len(), 1);
    assert_eq!(
        (s.processors[0].id.as_str(), s.processors[0].spans_sampled),
        ("tail_sampling", 3)
    );

    let (_, body) = api
        .get(&format!("/api/v1/sampling/decisions?traceID={TRACE_HEX}"))
        .await;
    assert_eq!(
        body["data"][0]["trace_id"], TRACE_HEX,
        "persisted by the exporter"
    );

    let (st, body) = api
        .get(&format!(
            "/api/v1/traces/{TRACE_HEX}/spans?offset=1&limit=1"
        ))
        .await;
    assert_eq!(st, 200);
    let w: SpanWindow = serde_json::from_value(body).unwrap();
    assert_eq!((w.total, w.spans.len()), (3, 1));
    assert_eq!(
        w.spans[0].operation_name, "POST",
        "second span by start time"
    );
    assert_eq!(w.processes.len(), 1, "only the window's processes");

    let (_, body) = api.get("/api/v1/traces?status=error&lookback=1h").await;
    let sums: TraceSummaries = serde_json::from_value(body).unwrap();
    assert_eq!(sums.data.len(), 1);
    assert_eq!(
        (
            sums.data[0].root_operation.as_str(),
            sums.data[0].error_count
        ),
        ("POST /orders", 1)
    );

    let (_, body) = api
        .get(&format!(
            "/api/v1/traces/{TRACE_HEX}/logs?spanID=0000000000000003"
        ))
        .await;
    let logs: LogsResponse = serde_json::from_value(body).unwrap();
    assert_eq!(logs.data.len(), 1);
    assert_eq!(
        (
            logs.data[0].body.as_str(),
            logs.data[0].service_name.as_str()
        ),
        ("card declined", "payment-service")
    );
    let (_, body) = api.get(&format!("/api/v1/traces/{TRACE_HEX}/logs")).await;
    assert_eq!(body["total"], 2);

    // Errors: {"error": {"code", "message"}}.
    let (st, body) = api
        .get("/api/v1/traces/0123456789abcdef0123456789abcdef/spans")
        .await;
    assert_eq!(st, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let (st, body) = api
        .get(&format!("/api/v1/traces/{TRACE_HEX}/spans?limit=0"))
        .await;
    assert_eq!(st, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("limit"));
    let (st, body) = api
        .get(&format!("/api/v1/traces/{TRACE_HEX}/logs?spanID=xyz"))
        .await;
    assert_eq!(st, 400);
    assert_eq!(body["error"]["code"], "bad_request");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn stores_lists_every_store_and_lookup_answers_facts_per_store() {
    let (api, _samplers) = start().await;

    let (st, body) = api.get("/api/v1/stores").await;
    assert_eq!(st, 200, "{body}");
    let stores: StoresResponse = serde_json::from_value(body).unwrap();
    let ids: Vec<&str> = stores.stores.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["tracelab", "tracelab/empty"], "in id order");
    let own = &stores.stores[0];
    assert_eq!((own.traces, own.spans, own.logs), (1, 3, 2));
    assert!(
        own.used_bytes > 0 && own.file_bytes >= own.used_bytes,
        "{own:?}"
    );
    assert_eq!(
        format!("http://{}", own.query_endpoint),
        api.base,
        "the bound address"
    );
    let empty = &stores.stores[1];
    assert_eq!((empty.traces, empty.spans), (0, 0));
    assert_eq!(empty.query_endpoint, "", "its query API was never bound");

    let unknown = "0123456789abcdef0123456789abcdef";
    let body = format!(
        r#"{{"trace_ids": ["{}", "{unknown}"]}}"#,
        TRACE_HEX.to_uppercase()
    );
    let (st, body_json) = api.post("/api/v1/traces/lookup", body.clone()).await;
    assert_eq!(st, 200, "{body_json}");
    let r: TraceLookupResponse = serde_json::from_value(body_json).unwrap();
    assert_eq!(r.missing, [unknown]);
    assert_eq!(r.traces.len(), 1);
    let t = &r.traces[0];
    assert_eq!(t.trace_id, TRACE_HEX, "normalised");
    assert_eq!((t.spans, t.error, t.duration_us), (3, true, 1_300_000));
    assert_eq!(t.services, ["api-gateway", "payment-service"]);

    let (st, body_json) = api
        .post("/api/v1/traces/lookup?store=tracelab/empty", body.clone())
        .await;
    assert_eq!(st, 200, "{body_json}");
    let r: TraceLookupResponse = serde_json::from_value(body_json).unwrap();
    assert!(r.traces.is_empty());
    assert_eq!(r.missing, [TRACE_HEX, unknown]);
    let (st, _) = api
        .post("/api/v1/traces/lookup?store=tracelab", body.clone())
        .await;
    assert_eq!(st, 200, "its own store by name");
}

#[tokio::test]
async fn lookup_refuses_unknown_stores_malformed_ids_and_oversized_requests() {
    let (api, _samplers) = start().await;

    let (st, body) = api
        .post(
            "/api/v1/traces/lookup?store=tracelab/nope",
            r#"{"trace_ids": []}"#.into(),
        )
        .await;
    assert_eq!(st, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("tracelab/nope") && msg.contains("tracelab, tracelab/empty"),
        "{msg}"
    );

    let (st, body) = api
        .post(
            "/api/v1/traces/lookup",
            format!(r#"{{"trace_ids": ["{TRACE_HEX}", "not-a-trace"]}}"#),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"not-a-trace\""),
        "{body}"
    );

    let (st, body) = api
        .post("/api/v1/traces/lookup", r#"{"ids": []}"#.into())
        .await;
    assert_eq!(st, 400, "wrong body shape");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("trace_ids"),
        "{body}"
    );

    let too_many: Vec<String> = (1..=collector_api::v1::MAX_LOOKUP_TRACE_IDS + 1)
        .map(|n| format!("{n:032x}"))
        .collect();
    let (st, body) = api
        .post(
            "/api/v1/traces/lookup",
            serde_json::to_string(&json!({ "trace_ids": too_many })).unwrap(),
        )
        .await;
    assert_eq!(st, 413);
    assert_eq!(body["error"]["code"], "too_large");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 10000"),
        "{body}"
    );
    let just_enough = &too_many[..collector_api::v1::MAX_LOOKUP_TRACE_IDS];
    let (st, body) = api
        .post(
            "/api/v1/traces/lookup",
            serde_json::to_string(&json!({ "trace_ids": just_enough })).unwrap(),
        )
        .await;
    assert_eq!(st, 200, "the limit itself is accepted");
    assert_eq!(body["missing"].as_array().unwrap().len(), 10_000);
}

/// `/api/traces` and `/api/v1/traces` with Jaeger's one-span semantics, and the scan bound
/// reported in `warnings` instead of a silently short answer.
#[tokio::test]
async fn searches_match_on_one_span_and_report_the_scan_bound() {
    let dir = tempfile::tempdir().unwrap();
    let exporter = exporter_in(dir.path()).await;
    let base = now_ns();
    // Trace 0x..01: tag on a 10 ms span, 2 s on another. Trace 0x..02: both on one span.
    let with_trace = |t: u8, mut s: Span| {
        s.trace_id = [t; 16].to_vec();
        s
    };
    let mut a = span(1, 0, "GET /cart", 2, 0, 10, base);
    a.attributes = vec![kv("customer.tier", Value::StringValue("gold".into()))];
    let b = span(2, 1, "SELECT", 3, 1, 2000, base);
    let mut c = span(1, 0, "GET /cart", 2, 5, 2000, base);
    c.attributes = vec![kv("customer.tier", Value::StringValue("gold".into()))];
    Consumer::<ResourceSpans>::consume(
        &exporter,
        vec![resource_spans(
            "shop",
            vec![with_trace(1, a), with_trace(1, b), with_trace(2, c)],
        )],
    )
    .await
    .unwrap();
    Consumer::<ResourceSpans>::shutdown(&exporter)
        .await
        .unwrap();
    let store = exporter.store();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let mut stores = StoreRegistry::default();
    stores.insert("tracelab", store.clone());
    let stores = Arc::new(stores);
    tokio::spawn(async move {
        super::serve(
            listener,
            "tracelab",
            stores,
            Arc::new(SamplingRegistry::default()),
            Arc::new(RedRegistry::default()),
            async {
                let _ = rx.await;
            },
        )
        .await
    });
    let empty = tempfile::tempdir().unwrap();
    let api = Api {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        stop: Some(tx),
        _dirs: [dir, empty],
    };
    let tags = urlencode(r#"{"customer.tier":"gold"}"#);
    let (st, body) = api
        .get(&format!(
            "/api/traces?service=shop&tags={tags}&minDuration=1s&lookback=1h"
        ))
        .await;
    assert_eq!(st, 200, "{body}");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["02".repeat(16)],
        "only the trace with both on one span"
    );
    assert!(
        body.get("warnings").is_none(),
        "no warnings key unless needed"
    );
    let (_, body) = api
        .get("/api/v1/traces?tag=customer.tier:gold&minDuration=1s&lookback=1h")
        .await;
    let v1: TraceSummaries = serde_json::from_value(body).unwrap();
    assert_eq!(v1.data.len(), 1);
    assert!(v1.warnings.is_empty());

    // Three spans match `service=shop`; a bound of two stops the scan early.
    store.set_search_scan_bound(2);
    let (_, body) = api.get("/api/traces?service=shop&lookback=1h").await;
    let w = body["warnings"].as_array().expect("top-level warnings");
    assert!(w[0].as_str().unwrap().contains("scan bound"), "{body}");
    for t in body["data"].as_array().unwrap() {
        assert_eq!(t["warnings"], body["warnings"], "each trace says so too");
    }
    let (_, body) = api.get("/api/v1/traces?service=shop&lookback=1h").await;
    let v1: TraceSummaries = serde_json::from_value(body).unwrap();
    assert_eq!(v1.warnings.len(), 1);
}

#[tokio::test]
async fn the_sampling_timeline_buckets_persisted_decisions_per_processor_and_policy() {
    let (api, _samplers) = start().await;
    let (st, v) = api
        .get("/api/v1/sampling/timeline?lookback=1h&step=1m")
        .await;
    assert_eq!(st, 200, "{v}");
    let t: collector_api::sampling::SamplingTimeline = serde_json::from_value(v).unwrap();
    assert_eq!((t.store.as_str(), t.step_ms), ("tracelab", 60_000));
    assert_eq!(t.start_ms % 60_000, 0, "buckets are aligned to the step");
    assert_eq!(t.end_ms - t.start_ms, 3_600_000);
    assert_eq!(t.processors.len(), 1, "{t:?}");
    let p = &t.processors[0];
    assert_eq!(
        (p.processor.as_str(), p.configured),
        ("tail_sampling", true)
    );
    assert_eq!(
        (p.slow_ms, p.slow_source, p.slow_policy.as_deref()),
        (
            1000,
            collector_api::sampling::SlowSource::LatencyPolicy,
            Some("slow")
        ),
        "slow defaults to the processor's latency threshold"
    );
    assert_eq!(p.buckets.len(), 60);
    assert_eq!(
        (
            p.total.kept,
            p.total.dropped,
            p.total.error_traces,
            p.total.error_kept
        ),
        (1, 0, 1, 1)
    );
    assert_eq!(
        (p.total.slow_traces, p.total.slow_kept),
        (1, 1),
        "1.3 s ≥ 1 s"
    );
    let filled: Vec<_> = p.buckets.iter().filter(|b| b.counts.traces() > 0).collect();
    assert_eq!(filled.len(), 1, "one decision, one bucket");
    assert_eq!(p.policies.len(), 1);
    assert_eq!(
        (
            p.policies[0].policy.as_deref(),
            p.policies[0].policy_type.as_deref()
        ),
        (Some("errors"), Some("status_code"))
    );
    assert_eq!(p.policies[0].total, p.total);

    // slowMs overrides the latency policy.
    let (_, v) = api
        .get("/api/v1/sampling/timeline?lookback=1h&step=1m&slowMs=2000")
        .await;
    assert_eq!(v["processors"][0]["slow_source"], "parameter");
    assert_eq!(v["processors"][0]["total"]["slow_traces"], 0);
    // Without step: about 60 buckets of whole seconds.
    let (_, v) = api.get("/api/v1/sampling/timeline?lookback=15m").await;
    assert_eq!(v["step_ms"], 15_000);
    assert_eq!(v["processors"][0]["buckets"].as_array().unwrap().len(), 60);
    // Another store: this sampler does not persist into it.
    let (_, v) = api
        .get("/api/v1/sampling/timeline?store=tracelab/empty")
        .await;
    assert_eq!(
        (
            v["store"].as_str(),
            v["processors"].as_array().map(Vec::len)
        ),
        (Some("tracelab/empty"), Some(0))
    );

    for (query, names) in [
        ("step=100ms", "step"),
        ("lookback=24h&step=1s", "buckets"),
        ("slowMs=fast", "slowMs"),
        ("lookback=0s", "lookback"),
        ("store=nope", "nope"),
    ] {
        let (st, v) = api.get(&format!("/api/v1/sampling/timeline?{query}")).await;
        assert!(st == 400 || st == 404, "{query}: {st} {v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(names), "{query}: {msg}");
    }
}

#[tokio::test]
async fn the_sampling_lab_result_is_stored_read_back_and_bounded() {
    let (api, _samplers) = start().await;
    let (st, v) = api.get("/api/v1/sampling/lab").await;
    assert_eq!(st, 404);
    assert_eq!(v["error"]["code"], "not_found");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("loadgen sampling-lab")
    );

    let result = json!({
        "finished_at_ms": 1_700_000_000_000i64, "requests": 120, "rate": 20.0, "seed": 11,
        "mix": {"checkout": 70, "payment.declined": 15, "payment.slow": 15}, "slow_ms": 1000,
        "truth": {"traced_requests": 120, "traces": 120, "spans": 4400, "error_traces": 18,
                  "slow_traces": 17},
        "strategies": [{
            "name": "tail", "store": "tracelab/tail", "description": "errors + slow + 10 %",
            "traces_kept": 45, "traces_kept_pct": 37.5, "spans_kept": 1600, "spans_kept_pct": 36.4,
            "error_traces_kept": 18, "error_traces_kept_pct": 100.0, "slow_traces_kept": 17,
            "slow_traces_kept_pct": 100.0, "partial_traces": 0, "bytes_stored": 1000,
            "bytes_per_million_requests": 8.3e6
        }]
    });
    let (st, body) = api.put("/api/v1/sampling/lab", result.to_string()).await;
    assert_eq!((st, body.as_str()), (204, ""));
    let (st, v) = api.get("/api/v1/sampling/lab").await;
    assert_eq!(st, 200);
    assert_eq!(v, result, "read back as sent");

    let mut none = result.clone();
    none["strategies"] = json!([]);
    let (st, body) = api.put("/api/v1/sampling/lab", none.to_string()).await;
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("strategies"), "{body}");
    let (st, body) = api
        .put("/api/v1/sampling/lab", "{\"requests\": 1}".into())
        .await;
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("bad_request"), "{body}");
    let mut huge = result.clone();
    huge["strategies"][0]["description"] =
        J::String("x".repeat(collector_api::sampling::MAX_LAB_RESULT_BYTES));
    let (st, body) = api.put("/api/v1/sampling/lab", huge.to_string()).await;
    assert_eq!(st, 413, "{body}");
    assert!(body.contains("too_large"), "{body}");
    let (_, v) = api.get("/api/v1/sampling/lab").await;
    assert_eq!(v, result, "refused bodies change nothing");
}

#[tokio::test]
async fn v1_dependencies_serve_the_service_map_and_refuse_bad_windows() {
    let (api, _stats) = start().await;
    let end_ms = now_ns() / 1_000_000 + 120_000;
    let (st, body) = api
        .get(&format!(
            "/api/v1/dependencies?endTs={end_ms}&lookback=3600000"
        ))
        .await;
    assert_eq!(st, 200, "{body}");
    let m: collector_api::dependencies::DependenciesResponse =
        serde_json::from_value(body.clone()).unwrap();
    // The stored trace: the gateway's CLIENT span is the parent of payment's declined SERVER span.
    let e = m
        .edge(
            "service:api-gateway",
            "service:payment-service",
            collector_api::dependencies::EdgeKind::Http,
        )
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!((e.calls, e.errors), (1, 1));
    assert!(within_pct(e.latency.p50_us, 1_200_000), "{:?}", e.latency);
    assert_eq!(body["edges"][0]["kind"], "http");
    assert_eq!(body["nodes"][0]["kind"], "service");
    let gw = m.node("service:api-gateway").unwrap();
    assert_eq!(gw.calls, 1, "its SERVER root");
    assert!(gw.rate > 0.0 && gw.rate <= 1.0 / 3600.0 * 1.02);
    assert!(m.end_us - m.start_us >= 3_600_000_000);

    for (q, names) in [
        ("endTs=yesterday", "endTs"),
        ("lookback=-5", "lookback"),
        ("lookback=0", "lookback"),
        ("endTs=99999999999999999", "endTs"),
    ] {
        let (st, body) = api.get(&format!("/api/v1/dependencies?{q}")).await;
        assert_eq!(st, 400, "{q}: {body}");
        assert_eq!(body["error"]["code"], "bad_request");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(names),
            "{q}: {body}"
        );
    }
}

fn within_pct(got: u64, want: u64) -> bool {
    (got as f64 - want as f64).abs() <= want as f64 * 0.0625
}
