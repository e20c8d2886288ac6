//! `TraceClient`: reads traces from the collector's Jaeger-compatible query API and waits, without
//! fixed sleeps, until a trace is complete: its span count stayed the same for a quiet period, no
//! span points at a missing parent, and any spans the caller said to expect are there.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use collector_api::v1::SamplingStatsResponse;
use collector_api::{JaegerResponse, Trace};
use serde::Deserialize;

use crate::matcher::SpanMatcher;
use crate::view::TraceView;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("trace {trace_id} not found at {url} after waiting {waited:.1?}")]
    NotFound {
        trace_id: String,
        url: String,
        waited: Duration,
    },
    #[error("query API request {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("query API {url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("query API {url} sent JSON this kit cannot read: {source}")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}

/// How long and how to wait for a trace to be complete.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Wait {
    /// Give up after this long (the trace is then returned marked incomplete, if it was seen).
    #[serde(with = "millis", rename = "deadline_ms")]
    pub deadline: Duration,
    /// The span count must stay unchanged this long.
    #[serde(with = "millis", rename = "quiet_period_ms")]
    pub quiet_period: Duration,
    #[serde(with = "millis", rename = "poll_interval_ms")]
    pub poll_interval: Duration,
    /// Accept spans whose parent is missing (a trace expected to be fragmented).
    pub allow_fragments: bool,
    /// A spec whose trace is still incomplete at the deadline fails, unless this says a partial
    /// trace is what it expects.
    pub allow_incomplete: bool,
    /// Spans that must be present before the trace counts as complete — for parts that arrive
    /// late, such as a Kafka consumer span.
    pub until_present: Vec<SpanMatcher>,
}

impl Default for Wait {
    /// 30 s deadline (generous: a slow machine must not fail a test), 1 s quiet period.
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(30),
            quiet_period: Duration::from_secs(1),
            poll_interval: Duration::from_millis(100),
            allow_fragments: false,
            allow_incomplete: false,
            until_present: Vec::new(),
        }
    }
}

impl Wait {
    pub fn new(deadline: Duration, quiet_period: Duration) -> Self {
        Self {
            deadline,
            quiet_period,
            ..Self::default()
        }
    }
    pub fn allow_fragments(mut self) -> Self {
        self.allow_fragments = true;
        self
    }
    pub fn until_present(mut self, m: SpanMatcher) -> Self {
        self.until_present.push(m);
        self
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// A Jaeger trace search (`GET /api/traces?service=…`).
#[derive(Debug, Clone, Default)]
pub struct TraceQuery {
    pub service: String,
    pub operation: Option<String>,
    /// Attribute filters, `key=value`.
    pub tags: Vec<(String, String)>,
    /// Window start / end as µs since the epoch.
    pub start_us: Option<u64>,
    pub end_us: Option<u64>,
    pub limit: Option<usize>,
}

/// Client of one collector's query API (base URL such as `http://127.0.0.1:16686`).
#[derive(Debug, Clone)]
pub struct TraceClient {
    base: String,
    http: reqwest::Client,
}

impl TraceClient {
    pub fn new(query_base_url: impl Into<String>) -> Self {
        let base = query_base_url.into().trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self { base, http }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// GET `url`: the status and the body as text.
    async fn get_text(&self, url: &str) -> Result<(u16, String), FetchError> {
        let http = |source| FetchError::Http {
            url: url.to_string(),
            source,
        };
        let resp = self.http.get(url).send().await.map_err(http)?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(http)?;
        Ok((status, body))
    }

    /// One read of `/api/traces/{id}`: `Ok(None)` when the query API does not know the trace (yet).
    pub async fn get_trace(&self, trace_id: &str) -> Result<Option<Trace>, FetchError> {
        let url = format!("{}/api/traces/{trace_id}", self.base);
        let (status, body) = self.get_text(&url).await?;
        if status == 404 {
            return Ok(None);
        }
        if status != 200 {
            return Err(FetchError::Status { url, status, body });
        }
        let parsed: JaegerResponse<Option<Vec<Trace>>> =
            serde_json::from_str(&body).map_err(|source| FetchError::Decode {
                url: url.clone(),
                source,
            })?;
        Ok(parsed.data.and_then(|mut v| {
            if v.is_empty() {
                None
            } else {
                Some(v.swap_remove(0))
            }
        }))
    }

    /// Polls `/api/traces/{id}` until the trace is complete (see [`Wait`]) or the deadline passes.
    /// A trace seen but not complete by then is returned with `is_complete() == false` (its
    /// assertions will say so); a trace never seen is `FetchError::NotFound`.
    pub async fn fetch_trace(&self, trace_id: &str, wait: &Wait) -> Result<TraceView, FetchError> {
        let started = Instant::now();
        let mut last: Option<Trace> = None;
        let mut stable_since = Instant::now();
        loop {
            let now = Instant::now();
            if let Some(trace) = self.get_trace(trace_id).await? {
                if last
                    .as_ref()
                    .is_none_or(|l| l.spans.len() != trace.spans.len())
                {
                    stable_since = now;
                }
                let view = TraceView::new(trace.clone(), true, started.elapsed());
                let settled = now.duration_since(stable_since) >= wait.quiet_period;
                let connected = wait.allow_fragments || view.missing_parent_spans().is_empty();
                let expected = wait.until_present.iter().all(|m| !view.find(m).is_empty());
                if settled && connected && expected {
                    return Ok(view);
                }
                last = Some(trace);
            }
            if started.elapsed() >= wait.deadline {
                return match last {
                    Some(t) => Ok(TraceView::new(t, false, started.elapsed())),
                    None => Err(FetchError::NotFound {
                        trace_id: trace_id.to_string(),
                        url: format!("{}/api/traces/{trace_id}", self.base),
                        waited: started.elapsed(),
                    }),
                };
            }
            tokio::time::sleep(wait.poll_interval).await;
        }
    }

    /// Jaeger search: whole traces matching `q`.
    pub async fn find_traces(&self, q: &TraceQuery) -> Result<Vec<TraceView>, FetchError> {
        let mut params: Vec<(&str, String)> = vec![("service", q.service.clone())];
        if let Some(op) = &q.operation {
            params.push(("operation", op.clone()));
        }
        if !q.tags.is_empty() {
            let tags: serde_json::Map<String, serde_json::Value> = q
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            params.push(("tags", serde_json::Value::Object(tags).to_string()));
        }
        if let Some(s) = q.start_us {
            params.push(("start", s.to_string()));
        }
        if let Some(e) = q.end_us {
            params.push(("end", e.to_string()));
        }
        params.push(("limit", q.limit.unwrap_or(100).to_string()));
        let url = reqwest::Url::parse_with_params(&format!("{}/api/traces", self.base), &params)
            .map(String::from)
            .unwrap_or_else(|_| format!("{}/api/traces", self.base));
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|source| FetchError::Http {
                url: url.clone(),
                source,
            })?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|source| FetchError::Http {
            url: url.clone(),
            source,
        })?;
        if status != 200 {
            return Err(FetchError::Status { url, status, body });
        }
        let parsed: JaegerResponse<Option<Vec<Trace>>> =
            serde_json::from_str(&body).map_err(|source| FetchError::Decode { url, source })?;
        Ok(parsed
            .data
            .unwrap_or_default()
            .into_iter()
            .map(TraceView::from_trace)
            .collect())
    }

    /// Traces other than `main` that started in `[start_us, end_us]` and whose root (a span with
    /// no parent at all) matches `root` — the detached fragments a broken propagation leaves: the
    /// callee starts a new trace instead of continuing the caller's. Polls until at least one is
    /// found or `deadline` passes.
    pub async fn find_detached_fragments(
        &self,
        main_trace_id: &str,
        root: &SpanMatcher,
        start_us: u64,
        end_us: u64,
        deadline: Duration,
    ) -> Result<Vec<TraceView>, FetchError> {
        let service = root.service.clone().unwrap_or_default();
        let started = Instant::now();
        loop {
            let found: Vec<TraceView> = self
                .find_traces(&TraceQuery {
                    service: service.clone(),
                    operation: root.name.clone(),
                    start_us: Some(start_us),
                    end_us: Some(end_us),
                    limit: Some(200),
                    ..TraceQuery::default()
                })
                .await?
                .into_iter()
                .filter(|t| t.trace_id() != main_trace_id)
                .filter(|t| {
                    t.root().is_some_and(|r| {
                        r.span.parent_span_id().is_none()
                            && r.matches(root)
                            && r.start_us() >= start_us
                            && r.start_us() <= end_us
                    })
                })
                .collect();
            if !found.is_empty() || started.elapsed() >= deadline {
                return Ok(found);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl TraceClient {
    /// `GET /api/v1/sampling`: the tail sampler's per-policy counts and recent decisions.
    /// The collector's recorded tail-sampling decision for a trace (`/api/v1/sampling/decisions`),
    /// `None` when it made none (no tail sampling, or not yet decided).
    pub async fn sampling_decision(
        &self,
        trace_id: &str,
    ) -> Result<Option<collector_api::v1::SamplingDecision>, FetchError> {
        let base = format!("{}/api/v1/sampling/decisions", self.base);
        let url = reqwest::Url::parse_with_params(&base, &[("traceID", trace_id), ("limit", "1")])
            .map(String::from)
            .unwrap_or(base);
        let (status, body) = self.get_text(&url).await?;
        if status != 200 {
            return Ok(None);
        }
        let d: collector_api::v1::DecisionsResponse =
            serde_json::from_str(&body).map_err(|source| FetchError::Decode { url, source })?;
        Ok(d.data.into_iter().next())
    }

    pub async fn sampling_stats(&self) -> Result<SamplingStatsResponse, FetchError> {
        let url = format!("{}/api/v1/sampling", self.base);
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|source| FetchError::Http {
                url: url.clone(),
                source,
            })?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|source| FetchError::Http {
            url: url.clone(),
            source,
        })?;
        if status != 200 {
            return Err(FetchError::Status { url, status, body });
        }
        serde_json::from_str(&body).map_err(|source| FetchError::Decode { url, source })
    }
}

/// Now as µs since the epoch (for search windows).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
