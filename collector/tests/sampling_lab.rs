//! The sampling lab through the real collector: one OTLP receiver fanning out into parallel
//! pipelines, each with its own sampler and store — `tail_sampling/errors` into `tracelab/errors`,
//! no sampler into `tracelab`, `probabilistic_sampler/head` (50 %) into `tracelab/head`, and
//! `tail_sampling/all` into a `forward` connector whose pipeline exports to `tracelab/forwarded`.
//! Checks the per-processor statistics, the store registry, trace lookups per store, and that each
//! store persists the decisions of the tail sampler upstream of it and no other's.

mod common;

use std::collections::BTreeSet;

use collector_api::v1::{
    Decision, DecisionsResponse, SamplerType, SamplingStatsResponse, StoresResponse,
    TraceLookupResponse,
};
use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span, Status};
use prost::Message;

const TRACES: u8 = 20;
/// Traces 1..=ERRORS have an ERROR span; the rest are healthy.
const ERRORS: u8 = 6;
const SPANS_PER_TRACE: u64 = 3;

fn config(dir: &std::path::Path) -> String {
    let store = |name: &str| {
        format!(
            "{{storage: {{directory: {}}}, query: {{endpoint: 127.0.0.1:0}}}}",
            dir.join(name).display()
        )
    };
    format!(
        "receivers:
  otlp:
    protocols:
      http: {{endpoint: 127.0.0.1:0}}
processors:
  tail_sampling/errors:
    decision_wait: 300ms
    policies:
      - {{name: errors, type: status_code, status_code: {{status_codes: [ERROR]}}}}
  tail_sampling/all:
    decision_wait: 300ms
    policies:
      - {{name: everything, type: always_sample}}
  probabilistic_sampler/head:
    sampling_percentage: 50
connectors:
  forward:
exporters:
  tracelab: {}
  tracelab/errors: {}
  tracelab/head: {}
  tracelab/forwarded: {}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [tracelab]}}
    traces/errors: {{receivers: [otlp], processors: [tail_sampling/errors], exporters: [tracelab/errors]}}
    traces/head: {{receivers: [otlp], processors: [probabilistic_sampler/head], exporters: [tracelab/head]}}
    traces/all: {{receivers: [otlp], processors: [tail_sampling/all], exporters: [forward]}}
    traces/forwarded: {{receivers: [forward], exporters: [tracelab/forwarded]}}
",
        store("all"),
        store("errors"),
        store("head"),
        store("forwarded"),
    )
}

fn trace_id(n: u8) -> [u8; 16] {
    let mut id = [0x5a; 16];
    id[15] = n;
    id
}

fn hex(n: u8) -> String {
    collector_api::ids::hex_id(&trace_id(n))
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// One trace: `gateway` (root 0–50 ms, child 5–40 ms) calling `payment` (10–30 ms), whose span
/// has status ERROR when `error`.
fn trace(n: u8, error: bool) -> Vec<ResourceSpans> {
    let t0 = now_ns() - 60_000_000_000;
    let span = |id: u8, parent: u8, name: &str, from_ms: u64, to_ms: u64| Span {
        trace_id: trace_id(n).to_vec(),
        span_id: vec![n, 0, 0, 0, 0, 0, 0, id],
        parent_span_id: if parent == 0 {
            Vec::new()
        } else {
            vec![n, 0, 0, 0, 0, 0, 0, parent]
        },
        name: name.into(),
        kind: 2,
        start_time_unix_nano: t0 + from_ms * 1_000_000,
        end_time_unix_nano: t0 + to_ms * 1_000_000,
        ..Default::default()
    };
    let mut charge = span(3, 2, "charge", 10, 30);
    if error {
        charge.status = Some(Status {
            code: 2,
            message: "card declined".into(),
        });
    }
    vec![
        service_spans(
            "gateway",
            vec![
                span(1, 0, "POST /checkout", 0, 50),
                span(2, 1, "POST /charges", 5, 40),
            ],
        ),
        service_spans("payment", vec![charge]),
    ]
}

async fn get<T: serde::de::DeserializeOwned>(url: &str) -> Option<T> {
    reqwest::get(url).await.ok()?.json().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_pipelines_sample_into_their_own_stores_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let c = start(&config(dir.path())).await;
    let otlp = format!("http://{}/v1/traces", c.addr("otlp/http").unwrap());
    let api = |store: &str| format!("http://{}", c.addr(&format!("{store}/query")).unwrap());
    let http = reqwest::Client::new();
    for n in 1..=TRACES {
        let req = ExportTraceServiceRequest {
            resource_spans: trace(n, n <= ERRORS),
        };
        let r = http
            .post(&otlp)
            .header("content-type", "application/x-protobuf")
            .body(req.encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let spans_sent = u64::from(TRACES) * SPANS_PER_TRACE;
    let errors = u64::from(ERRORS);
    let healthy = u64::from(TRACES - ERRORS);

    // Per-processor statistics, served by any store's query API.
    let sampling_url = format!("{}/api/v1/sampling", api("tracelab/head"));
    // A tick publishes its pending count after its decisions: wait for both.
    let stats: SamplingStatsResponse = eventually("both tail samplers decided", async || {
        let s: SamplingStatsResponse = get(&sampling_url).await?;
        let done = |id: &str| {
            s.processors.iter().find(|p| p.id == id).is_some_and(|p| {
                p.traces_sampled + p.traces_not_sampled == u64::from(TRACES)
                    && p.pending_traces == 0
            })
        };
        (done("tail_sampling/errors") && done("tail_sampling/all")).then_some(s)
    })
    .await;
    let ids: Vec<&str> = stats.processors.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "probabilistic_sampler/head",
            "tail_sampling/all",
            "tail_sampling/errors"
        ]
    );
    let [head, all, errs] = &stats.processors[..] else {
        unreachable!()
    };
    assert_eq!(errs.processor_type, SamplerType::TailSampling);
    assert_eq!(errs.pipelines, ["traces/errors"]);
    assert_eq!(
        (errs.traces_sampled, errs.traces_not_sampled),
        (errors, healthy)
    );
    assert_eq!(
        (errs.spans_sampled, errs.spans_not_sampled),
        (errors * SPANS_PER_TRACE, healthy * SPANS_PER_TRACE)
    );
    assert_eq!(
        (errs.policies.len(), errs.policies[0].name.as_str()),
        (1, "errors")
    );
    assert_eq!(errs.policies[0].kept, errors);
    assert_eq!(all.pipelines, ["traces/all"]);
    assert_eq!(
        (all.traces_sampled, all.traces_not_sampled),
        (u64::from(TRACES), 0)
    );
    assert_eq!(head.processor_type, SamplerType::ProbabilisticSampler);
    assert_eq!(head.pipelines, ["traces/head"]);
    assert_eq!(
        head.spans_sampled + head.spans_not_sampled,
        spans_sent,
        "every span sent was decided once: {head:?}"
    );
    assert_eq!(head.spans_sampled % SPANS_PER_TRACE, 0, "whole traces kept");
    assert_eq!((head.traces_sampled, head.traces_not_sampled), (0, 0));
    // The top level aggregates the tail samplers, as before.
    assert_eq!(
        (stats.traces_sampled, stats.traces_not_sampled),
        (u64::from(TRACES) + errors, healthy)
    );
    let policies: Vec<&str> = stats.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(policies, ["everything", "errors"], "in processor id order");

    // The store registry: every store, its bound query address and what it holds.
    let head_traces = head.spans_sampled / SPANS_PER_TRACE;
    let expected = [
        ("tracelab", u64::from(TRACES)),
        ("tracelab/errors", errors),
        ("tracelab/forwarded", u64::from(TRACES)),
        ("tracelab/head", head_traces),
    ];
    let stores_url = format!("{}/api/v1/stores", api("tracelab/errors"));
    let stores: StoresResponse = eventually("every store holds its traces", async || {
        let s: StoresResponse = get(&stores_url).await?;
        let counts: Vec<(&str, u64)> = s.stores.iter().map(|s| (s.id.as_str(), s.traces)).collect();
        // Trace and span counts move one after the other: wait for both.
        let whole = s
            .stores
            .iter()
            .all(|s| s.spans == s.traces * SPANS_PER_TRACE);
        (counts == expected && whole).then_some(s)
    })
    .await;
    for s in &stores.stores {
        assert_eq!(
            s.query_endpoint,
            c.addr(&format!("{}/query", s.id)).unwrap().to_string(),
            "{}'s query API address",
            s.id
        );
        assert_eq!(
            s.spans,
            s.traces * SPANS_PER_TRACE,
            "{}: whole traces",
            s.id
        );
        assert!(s.file_bytes > 0);
    }
    let from_other: StoresResponse = get(&format!("{}/api/v1/stores", api("tracelab")))
        .await
        .unwrap();
    let ids = |r: &StoresResponse| r.stores.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&from_other),
        ids(&stores),
        "every query API lists all stores"
    );

    // Lookup in another store through the keep-everything store's API.
    let all_ids: Vec<String> = (1..=TRACES).map(hex).collect();
    let lookup = async |query: &str| -> TraceLookupResponse {
        let r = http
            .post(format!("{}/api/v1/traces/lookup{query}", api("tracelab")))
            .json(&serde_json::json!({ "trace_ids": all_ids }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    };
    let in_errors = lookup("?store=tracelab/errors").await;
    let found: Vec<String> = in_errors
        .traces
        .iter()
        .map(|t| t.trace_id.clone())
        .collect();
    assert_eq!(found, (1..=ERRORS).map(hex).collect::<Vec<_>>());
    for t in &in_errors.traces {
        assert!(t.error, "{t:?}");
        assert_eq!(t.spans, SPANS_PER_TRACE);
        assert_eq!(t.duration_us, 50_000);
        assert_eq!(t.services, ["gateway", "payment"]);
    }
    assert_eq!(
        in_errors.missing,
        (ERRORS + 1..=TRACES).map(hex).collect::<Vec<_>>()
    );
    let in_all = lookup("").await;
    assert!(
        in_all.missing.is_empty(),
        "the default store keeps everything"
    );
    let flagged: Vec<bool> = in_all.traces.iter().map(|t| t.error).collect();
    assert_eq!(
        flagged,
        (1..=TRACES).map(|n| n <= ERRORS).collect::<Vec<_>>()
    );

    // Each store persists the decisions of the tail sampler upstream of it, and only those.
    let decisions = |store: &'static str| {
        let url = format!("{}/api/v1/sampling/decisions?limit=1000", api(store));
        async move { get::<DecisionsResponse>(&url).await.map(|d| d.data) }
    };
    let persisted = |store: &'static str| async move {
        eventually(&format!("{store}'s decisions persisted"), async || {
            decisions(store)
                .await
                .filter(|d| d.len() == usize::from(TRACES))
        })
        .await
    };
    let in_errors = persisted("tracelab/errors").await;
    let sampled: BTreeSet<String> = in_errors
        .iter()
        .filter(|d| d.decision == Decision::Sampled)
        .map(|d| d.trace_id.clone())
        .collect();
    assert_eq!(sampled, (1..=ERRORS).map(hex).collect());
    assert!(
        in_errors.iter().all(|d| match d.decision {
            Decision::Sampled => d.policy.as_deref() == Some("errors"),
            Decision::NotSampled => d.policy.is_none(),
        }),
        "only tail_sampling/errors' decisions: {in_errors:?}"
    );
    let forwarded = persisted("tracelab/forwarded").await;
    assert!(
        forwarded
            .iter()
            .all(|d| d.decision == Decision::Sampled && d.policy.as_deref() == Some("everything")),
        "tail_sampling/all's decisions, through the forward connector: {forwarded:?}"
    );
    let traces: BTreeSet<&str> = forwarded.iter().map(|d| d.trace_id.as_str()).collect();
    assert_eq!(traces.len(), usize::from(TRACES), "one decision per trace");
    for store in ["tracelab", "tracelab/head"] {
        assert_eq!(
            decisions(store).await.map(|d| d.len()),
            Some(0),
            "{store} has no tail sampler upstream"
        );
    }
    c.shutdown().await;
}
