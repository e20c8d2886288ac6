//! `loadgen sampling-lab`: one seeded request sequence, and what each sampling strategy kept of it.
//!
//! The collector runs every strategy side by side on the same spans
//! (`collector/config/sampling-lab.yaml`: one receiver, a `forward` connector, one pipeline and
//! one store per strategy). The lab
//!
//! 1. lists the collector's stores (`GET /api/v1/stores`) and notes their sizes;
//! 2. sends the load ([`crate::runner::run`]) and collects each request's trace id;
//! 3. waits until every tail sampler has decided (`pending_traces` of each processor in
//!    `GET /api/v1/sampling` is 0) and the stores stop growing (bounded by `--settle-timeout`);
//! 4. asks every store which of the run's traces it holds (`POST /api/v1/traces/lookup`);
//! 5. compares each store with the truth: the keep-everything store's copy of every trace
//!    (error = a span with status ERROR; slow = trace duration ≥ `--slow-ms`), which is what the
//!    tail policies themselves look at.
//!
//! Traffic from before the run is left out: only the run's trace ids are looked up, and bytes are
//! the growth of each store during the run.
//!
//! 6. stores the result in the collector (`PUT /api/v1/sampling/lab` on the query API it was given,
//!    the keep-everything store's), where the viewer's `/sampling` page shows the latest one.
//!
//! The per-strategy figures are `collector_api::sampling`'s types, shared with the collector and
//! the viewer.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::time::Duration;

pub use collector_api::sampling::{LabTruth as Truth, StrategyResult};

use collector_api::sampling::{SamplingLabResult, human_bytes};
use collector_api::v1::{
    SamplingStatsResponse, StoreInfo, StoresResponse, TraceFacts, TraceLookupRequest,
    TraceLookupResponse,
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::report::RunSummary;
use crate::runner::{RunConfig, RunError, RunOutput, run};

/// The keep-everything store: the truth the others are compared with.
pub const TRUTH_STORE: &str = "tracelab";
/// Lookups per request (the collector takes at most 10,000 ids at once).
const LOOKUP_CHUNK: usize = 5000;

#[derive(Debug, Clone)]
pub struct LabConfig {
    pub run: RunConfig,
    /// The collector's query API (any of its stores' query APIs serves every store).
    pub query: String,
    /// A trace at least this long is slow.
    pub slow: Duration,
    /// How long to wait for the samplers' decisions and the stores after the last answer.
    pub settle_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("the collector's query API at {url}: {cause}")]
    Query { url: String, cause: String },
    #[error(
        "the collector at {0} has no `{TRUTH_STORE}` store to compare with, or no other store: \
         start the stack with the lab's collector config (`make sampling-lab`, or \
         `tracelab up --sampling lab`, or `--config collector/config/sampling-lab.yaml`)"
    )]
    NotALab(String),
    #[error(
        "the samplers did not settle within {0:?} (traces still pending: {1}); raise --settle-timeout"
    )]
    Unsettled(Duration, u64),
}

/// `loadgen sampling-lab --summary FILE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabSummary {
    /// When the measurement finished (unix ms).
    pub finished_at_ms: i64,
    /// Requests sent.
    pub requests: u64,
    pub slow_ms: u64,
    pub truth: Truth,
    pub strategies: Vec<StrategyResult>,
    /// The load run's own summary (statuses, latency).
    pub run: RunSummary,
}

/// What the shipped lab config's stores do.
pub fn describe(store: &str) -> (String, String) {
    let (name, what) = match store {
        "tracelab" => ("all", "keep everything"),
        "tracelab/head" => (
            "head",
            "head 10 % by trace id (probabilistic_sampler standing in for the SDK)",
        ),
        "tracelab/tail" => ("tail", "tail: errors + slow (≥ 1 s) + 10 % of the rest"),
        "tracelab/rate" => ("rate", "rate-limited: 500 spans/s of whole traces"),
        "tracelab/errors" => ("errors", "errors only (always-on for errors)"),
        other => {
            let short = other.strip_prefix("tracelab/").unwrap_or(other);
            return (short.to_string(), format!("store {other}"));
        }
    };
    (name.to_string(), what.to_string())
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn err(&self, path: &str, cause: impl ToString) -> LabError {
        LabError::Query {
            url: format!("{}{path}", self.base),
            cause: cause.to_string(),
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        path: &str,
    ) -> Result<T, LabError> {
        let resp = req.send().await.map_err(|e| self.err(path, e))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| self.err(path, e))?;
        if !status.is_success() {
            return Err(self.err(path, format!("{status}: {body}")));
        }
        serde_json::from_str(&body).map_err(|e| self.err(path, e))
    }

    async fn stores(&self) -> Result<Vec<StoreInfo>, LabError> {
        let path = "/api/v1/stores";
        let r: StoresResponse = self
            .json(self.http.get(format!("{}{path}", self.base)), path)
            .await?;
        Ok(r.stores)
    }

    async fn sampling(&self) -> Result<SamplingStatsResponse, LabError> {
        let path = "/api/v1/sampling";
        self.json(self.http.get(format!("{}{path}", self.base)), path)
            .await
    }

    /// Stores the result in the collector for the sampling dashboard.
    async fn put_lab(&self, result: &SamplingLabResult) -> Result<(), LabError> {
        let path = "/api/v1/sampling/lab";
        let resp = self
            .http
            .put(format!("{}{path}", self.base))
            .json(result)
            .send()
            .await
            .map_err(|e| self.err(path, e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(self.err(path, format!("{status}: {body}")));
        }
        Ok(())
    }

    async fn lookup(&self, store: &str, ids: &[String]) -> Result<Vec<TraceFacts>, LabError> {
        let path = "/api/v1/traces/lookup";
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let body = TraceLookupRequest {
                trace_ids: chunk.to_vec(),
            };
            let r: TraceLookupResponse = self
                .json(
                    // Store ids are `type/name`: `/` needs no escaping in a query value.
                    self.http
                        .post(format!("{}{path}?store={store}", self.base))
                        .json(&body),
                    path,
                )
                .await?;
            out.extend(r.traces);
        }
        Ok(out)
    }
}

/// Runs the lab (see the module header). Progress notes go to stderr.
pub async fn sampling_lab(cfg: &LabConfig) -> Result<(LabSummary, RunOutput), LabError> {
    let api = Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(RunError::Client)?,
        base: cfg.query.trim_end_matches('/').to_string(),
    };
    let before = api.stores().await?;
    if !before.iter().any(|s| s.id == TRUTH_STORE) || before.len() < 2 {
        return Err(LabError::NotALab(api.base.clone()));
    }
    eprintln!(
        "sampling lab: {} stores ({}); sending the load",
        before.len(),
        before
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let output = run(&cfg.run).await?;
    let run_summary = RunSummary::new(&cfg.run, &output);
    let ids: Vec<String> = output
        .outcomes
        .iter()
        .filter_map(|o| o.trace_id.clone())
        .collect();
    eprintln!(
        "sampling lab: {} requests answered with a trace id; waiting for the samplers' decisions",
        ids.len()
    );
    let after = settle(&api, cfg.settle_timeout).await?;

    let mut facts: BTreeMap<String, HashMap<String, TraceFacts>> = BTreeMap::new();
    for s in &after {
        let found = api.lookup(&s.id, &ids).await?;
        facts.insert(
            s.id.clone(),
            found.into_iter().map(|f| (f.trace_id.clone(), f)).collect(),
        );
    }
    let slow_us = cfg.slow.as_micros() as u64;
    let truth_facts = &facts[TRUTH_STORE];
    let is_error = |id: &str| truth_facts.get(id).is_some_and(|f| f.error);
    let is_slow = |id: &str| {
        truth_facts
            .get(id)
            .is_some_and(|f| f.duration_us >= slow_us)
    };
    let truth = Truth {
        traced_requests: ids.len() as u64,
        traces: truth_facts.len() as u64,
        spans: truth_facts.values().map(|f| f.spans).sum(),
        error_traces: truth_facts.values().filter(|f| f.error).count() as u64,
        slow_traces: truth_facts
            .values()
            .filter(|f| f.duration_us >= slow_us)
            .count() as u64,
    };
    let pct = |n: u64, of: u64| {
        if of == 0 {
            0.0
        } else {
            100.0 * n as f64 / of as f64
        }
    };
    let requests = output.sent;
    let mut strategies: Vec<StrategyResult> = after
        .iter()
        .map(|s| {
            let kept = &facts[&s.id];
            let grown = before
                .iter()
                .find(|b| b.id == s.id)
                .map_or(s.used_bytes, |b| s.used_bytes.saturating_sub(b.used_bytes));
            let spans: u64 = kept.values().map(|f| f.spans).sum();
            let errors = kept.keys().filter(|id| is_error(id)).count() as u64;
            let slow = kept.keys().filter(|id| is_slow(id)).count() as u64;
            let partial = kept
                .values()
                .filter(|f| {
                    truth_facts
                        .get(&f.trace_id)
                        .is_some_and(|t| f.spans < t.spans)
                })
                .count() as u64;
            let (name, description) = describe(&s.id);
            StrategyResult {
                name,
                store: s.id.clone(),
                description,
                traces_kept: kept.len() as u64,
                traces_kept_pct: pct(kept.len() as u64, truth.traces),
                spans_kept: spans,
                spans_kept_pct: pct(spans, truth.spans),
                error_traces_kept: errors,
                error_traces_kept_pct: pct(errors, truth.error_traces),
                slow_traces_kept: slow,
                slow_traces_kept_pct: pct(slow, truth.slow_traces),
                partial_traces: partial,
                bytes_stored: grown,
                bytes_per_million_requests: if requests == 0 {
                    0.0
                } else {
                    grown as f64 * 1e6 / requests as f64
                },
            }
        })
        .collect();
    // The truth first, then the shipped order, then anything else by id.
    let rank = |s: &StrategyResult| {
        ["all", "head", "tail", "rate", "errors"]
            .iter()
            .position(|n| *n == s.name)
            .unwrap_or(99)
    };
    strategies.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.store.cmp(&b.store)));
    let summary = LabSummary {
        finished_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        requests,
        slow_ms: cfg.slow.as_millis() as u64,
        truth,
        strategies,
        run: run_summary,
    };
    // The report is printed either way; a collector without the endpoint (older) only loses the
    // dashboard's copy.
    match api.put_lab(&summary.result()).await {
        Ok(()) => eprintln!(
            "sampling lab: result stored at {}/api/v1/sampling/lab (the viewer's /sampling shows it)",
            api.base
        ),
        Err(e) => eprintln!("sampling lab: the result could not be stored in the collector: {e}"),
    }
    Ok((summary, output))
}

/// Waits until no tail sampler has a pending trace and the stores' span counts held still over
/// two polls; returns the stores' final figures.
async fn settle(api: &Api, timeout: Duration) -> Result<Vec<StoreInfo>, LabError> {
    let deadline = Instant::now() + timeout;
    let mut last: Option<Vec<(String, u64)>> = None;
    let mut still = 0;
    loop {
        let pending: u64 = api
            .sampling()
            .await?
            .processors
            .iter()
            .map(|p| p.pending_traces)
            .sum();
        let stores = api.stores().await?;
        let spans: Vec<(String, u64)> = stores.iter().map(|s| (s.id.clone(), s.spans)).collect();
        if pending == 0 && last.as_ref() == Some(&spans) {
            still += 1;
        } else {
            still = 0;
        }
        // The batch processor and the store flush within a second; two still polls are enough.
        if still >= 2 {
            return Ok(stores);
        }
        if Instant::now() >= deadline {
            return Err(LabError::Unsettled(timeout, pending));
        }
        last = Some(spans);
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}

impl LabSummary {
    /// What the collector keeps of this run for the sampling dashboard.
    pub fn result(&self) -> SamplingLabResult {
        SamplingLabResult {
            finished_at_ms: self.finished_at_ms,
            requests: self.requests,
            rate: self.run.rate,
            seed: self.run.seed,
            mix: self.run.mix.clone(),
            slow_ms: self.slow_ms,
            truth: self.truth.clone(),
            strategies: self.strategies.clone(),
        }
    }

    /// The side-by-side table.
    pub fn table(&self) -> String {
        let t = &self.truth;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} requests, {} traces ({} spans): {} error traces, {} slow traces (≥ {} ms)",
            self.requests, t.traces, t.spans, t.error_traces, t.slow_traces, self.slow_ms
        );
        let _ = writeln!(
            s,
            "{:<8} {:>13} {:>15} {:>13} {:>13} {:>8} {:>11} {:>13}  how",
            "strategy",
            "traces kept",
            "spans kept",
            "errors kept",
            "slow kept",
            "partial",
            "stored",
            "per 1M req"
        );
        for r in &self.strategies {
            let _ = writeln!(
                s,
                "{:<8} {:>6} {:>5.1} % {:>8} {:>5.1} % {:>6} {:>5.1} % {:>6} {:>5.1} % {:>8} {:>11} {:>13}  {}",
                r.name,
                r.traces_kept,
                r.traces_kept_pct,
                r.spans_kept,
                r.spans_kept_pct,
                r.error_traces_kept,
                r.error_traces_kept_pct,
                r.slow_traces_kept,
                r.slow_traces_kept_pct,
                r.partial_traces,
                human_bytes(r.bytes_stored as f64),
                human_bytes(r.bytes_per_million_requests),
                r.description
            );
        }
        if t.traces < t.traced_requests {
            let _ = writeln!(
                s,
                "note: {} of {} traced requests were not found in the keep-everything store",
                t.traced_requests - t.traces,
                t.traced_requests
            );
        }
        s
    }
}
