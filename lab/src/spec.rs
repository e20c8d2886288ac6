//! Declarative trace tests (like Tracetest): a YAML spec names a request to send through the gateway
//! and the assertions its trace must satisfy. `tracelab assert SPEC.yaml` runs them against a
//! running stack; the e2e tests run the shipped specs under `lab/specs/` the same way.
//!
//! ```yaml
//! name: checkout
//! request:
//!   method: POST
//!   url: /orders                      # relative to the gateway
//!   headers: { X-Tracelab-Scenario: checkout }
//!   body: { items: [{ sku: LAPTOP-1, qty: 1 }], payment: { method: card, token: tok_test_123 } }
//!   expect_status: 201
//! wait: { deadline_ms: 30000, quiet_period_ms: 1000, until_present: [process orders] }
//! assertions:
//!   - services_present: [api-gateway, order-service, payment-service, inventory-service]
//!   - ends_before_starts: { first: charge_payment, then: reserve_inventory }
//!   - root_duration_below_ms: 3000
//!   - no_error_spans: true
//!   - bottleneck: payment-service     # the critical path's bottleneck (what the viewer names)
//! ```
//!
//! YAML is read with `yaml-rust2` (the workspace's one YAML crate) into a JSON value, then
//! deserialized with `serde_path_to_error`, so a mistake is reported with its key path.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use crate::assertions::{AssertionError, Count};
use crate::client::{FetchError, TraceClient, Wait, now_us};
use crate::matcher::SpanMatcher;
use crate::view::TraceView;

/// One spec file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub request: RequestSpec,
    #[serde(default)]
    pub wait: Wait,
    pub assertions: Vec<Assertion>,
}

/// The request that produces the trace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    #[serde(default = "default_method")]
    pub method: String,
    /// Relative to the gateway (`/orders`), or absolute.
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Sent as JSON when present.
    #[serde(default)]
    pub body: Option<Value>,
    #[serde(default)]
    pub expect_status: Option<u16>,
    /// Copies of this request sent at once just before it (their traces are not checked), so it
    /// meets a queue: how `kafka.consumer_lag`'s spec builds a consumer backlog. At most 100.
    #[serde(default)]
    pub backlog: usize,
}

fn default_method() -> String {
    "GET".into()
}

/// One assertion; each maps to a [`TraceView`] method of the same meaning.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Assertion {
    ServicesPresent(Vec<String>),
    ServicesAbsent(Vec<String>),
    SpanPresent(SpanMatcher),
    NoSpan(SpanMatcher),
    ChildOf {
        child: SpanMatcher,
        parent: SpanMatcher,
    },
    DescendantOf {
        span: SpanMatcher,
        ancestor: SpanMatcher,
    },
    NoChildren(SpanMatcher),
    /// `from` carries a span link (FOLLOWS_FROM) to `to`.
    LinkedTo {
        from: SpanMatcher,
        to: SpanMatcher,
    },
    EndsBeforeStarts {
        first: SpanMatcher,
        then: SpanMatcher,
    },
    /// `span` starts at least `min_ms` after `after` ends.
    StartsAfter {
        span: SpanMatcher,
        after: SpanMatcher,
        min_ms: u64,
    },
    RootDurationBelowMs(u64),
    Duration {
        span: SpanMatcher,
        #[serde(default)]
        min_ms: Option<u64>,
        #[serde(default)]
        max_ms: Option<u64>,
    },
    /// `span` takes at least `min` (0–1) of `of` (default: the root span).
    Share {
        span: SpanMatcher,
        #[serde(default)]
        of: Option<SpanMatcher>,
        min: f64,
    },
    ShareOfParent {
        span: SpanMatcher,
        min: f64,
    },
    NoErrorSpans(bool),
    ErrorSpansExactly(Vec<SpanMatcher>),
    /// `equals` absent: the attribute only has to be present.
    Attribute {
        span: SpanMatcher,
        key: String,
        #[serde(default)]
        equals: Option<Value>,
    },
    Event {
        span: SpanMatcher,
        name: String,
    },
    SpanCount {
        #[serde(default)]
        span: Option<SpanMatcher>,
        #[serde(default)]
        equals: Option<usize>,
        #[serde(default)]
        min: Option<usize>,
        #[serde(default)]
        max: Option<usize>,
    },
    /// At least `min` spans of this trace have a missing parent.
    Fragments {
        min: usize,
    },
    Connected(bool),
    /// The critical path's bottleneck: `bottleneck: payment-service` or
    /// `bottleneck: { service: payment-service, operation: charge }`.
    Bottleneck(BottleneckSpec),
    /// Another trace, started during the request, whose parentless root matches `root`: the
    /// callee of a hop that dropped the trace context.
    DetachedFragment {
        root: SpanMatcher,
    },
}

/// The service (and optionally the operation) a `bottleneck` assertion names.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BottleneckSpec {
    Service(String),
    Operation(BottleneckOperation),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BottleneckOperation {
    pub service: String,
    #[serde(default)]
    pub operation: Option<String>,
}

impl Assertion {
    /// Checks this assertion on `view`; `ctx` serves the ones that query beyond the trace.
    pub async fn check(
        &self,
        view: &TraceView,
        ctx: &CheckContext<'_>,
    ) -> Result<(), AssertionError> {
        match self {
            Assertion::ServicesPresent(s) => view.assert_services_present(&strs(s)),
            Assertion::ServicesAbsent(s) => view.assert_services_absent(&strs(s)),
            Assertion::SpanPresent(m) => view.assert_span(m),
            Assertion::NoSpan(m) => view.assert_no_span(m),
            Assertion::ChildOf { child, parent } => view.assert_child_of(child, parent),
            Assertion::DescendantOf { span, ancestor } => view.assert_descendant_of(span, ancestor),
            Assertion::NoChildren(m) => view.assert_no_children(m),
            Assertion::LinkedTo { from, to } => view.assert_linked(from, to),
            Assertion::EndsBeforeStarts { first, then } => {
                view.assert_ends_before_starts(first, then)
            }
            Assertion::StartsAfter {
                span,
                after,
                min_ms,
            } => view.assert_starts_after(span, after, Duration::from_millis(*min_ms)),
            Assertion::RootDurationBelowMs(ms) => {
                view.assert_root_duration_below(Duration::from_millis(*ms))
            }
            Assertion::Duration {
                span,
                min_ms,
                max_ms,
            } => view.assert_duration(
                span,
                min_ms.map(Duration::from_millis),
                max_ms.map(Duration::from_millis),
            ),
            Assertion::Share { span, of, min } => view.assert_share(span, of.as_ref(), *min),
            Assertion::ShareOfParent { span, min } => view.assert_share_of_parent(span, *min),
            Assertion::NoErrorSpans(true) => view.assert_no_error_spans(),
            // Rejected at load (`Spec::validate`); kept total for hand-built assertions.
            Assertion::NoErrorSpans(false) => Ok(()),
            Assertion::ErrorSpansExactly(ms) => view.assert_error_spans_exactly(ms),
            Assertion::Attribute { span, key, equals } => match equals {
                Some(v) => view.assert_attribute(span, key, v.clone()),
                None => view.assert_attribute_present(span, key),
            },
            Assertion::Event { span, name } => view.assert_event(span, name),
            Assertion::SpanCount {
                span,
                equals,
                min,
                max,
            } => {
                let count = match equals {
                    Some(n) => Count::exactly(*n),
                    None => Count::between(min.unwrap_or(0), max.unwrap_or(usize::MAX)),
                };
                view.assert_span_count(&span.clone().unwrap_or_default(), count)
            }
            Assertion::Fragments { min } => view.assert_fragments(*min),
            Assertion::Connected(true) => view.assert_connected(),
            // Rejected at load (`Spec::validate`); kept total for hand-built assertions.
            Assertion::Connected(false) => Ok(()),
            Assertion::Bottleneck(BottleneckSpec::Service(service)) => {
                view.assert_bottleneck(service, None)
            }
            Assertion::Bottleneck(BottleneckSpec::Operation(b)) => {
                view.assert_bottleneck(&b.service, b.operation.as_deref())
            }
            Assertion::DetachedFragment { root } => {
                let found = ctx
                    .client
                    .find_detached_fragments(
                        view.trace_id(),
                        root,
                        ctx.window_start_us,
                        ctx.window_end_us,
                        ctx.search_deadline,
                    )
                    .await
                    .map_err(|e| {
                        view.fail(
                            format!("a detached trace whose root is {root}"),
                            e.to_string(),
                        )
                    })?;
                if found.is_empty() {
                    Err(view.fail(
                        format!(
                            "a separate trace, started during the request, whose root is {root}"
                        ),
                        "none found in the query API",
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// What assertions that look beyond the trace need.
#[derive(Debug)]
pub struct CheckContext<'a> {
    pub client: &'a TraceClient,
    /// The request's time window, µs since the epoch.
    pub window_start_us: u64,
    pub window_end_us: u64,
    pub search_deadline: Duration,
}

/// A spec file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: YAML: {message}")]
    Yaml { path: String, message: String },
    #[error("{path}: at `{at}`: {message}")]
    Schema {
        path: String,
        at: String,
        message: String,
    },
}

impl Spec {
    pub fn from_file(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Parses a spec; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, SpecError> {
        let docs = YamlLoader::load_from_str(text).map_err(|e| SpecError::Yaml {
            path: origin.into(),
            message: e.to_string(),
        })?;
        let doc = docs.into_iter().next().unwrap_or(Yaml::Null);
        let value = yaml_to_json(doc).map_err(|message| SpecError::Yaml {
            path: origin.into(),
            message,
        })?;
        let spec: Spec =
            serde_path_to_error::deserialize(value).map_err(|e| SpecError::Schema {
                path: origin.into(),
                at: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        spec.validate(origin)?;
        Ok(spec)
    }

    /// Rejects assertions that would check nothing: a spec that cannot fail is not a test.
    fn validate(&self, origin: &str) -> Result<(), SpecError> {
        for (i, a) in self.assertions.iter().enumerate() {
            let (key, instead) = match a {
                Assertion::NoErrorSpans(false) => (
                    "no_error_spans",
                    "remove it, or name the spans that must fail with `error_spans_exactly`",
                ),
                Assertion::Connected(false) => (
                    "connected",
                    "remove it, or assert the fragmentation with `fragments: { min: 1 }`",
                ),
                _ => continue,
            };
            return Err(SpecError::Schema {
                path: origin.into(),
                at: format!("assertions[{i}].{key}"),
                message: format!("`{key}: false` asserts nothing; {instead}"),
            });
        }
        Ok(())
    }
}

/// YAML → JSON value (mapping keys must be scalars; they become strings).
pub fn yaml_to_json(y: Yaml) -> Result<Value, String> {
    Ok(match y {
        Yaml::Null | Yaml::BadValue => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::from(i),
        Yaml::Real(r) => {
            let f: f64 = r.parse().map_err(|_| format!("bad number {r}"))?;
            serde_json::Number::from_f64(f)
                .map(Value::Number)
                .unwrap_or(Value::Null)
        }
        Yaml::String(s) => Value::String(s),
        Yaml::Array(a) => Value::Array(a.into_iter().map(yaml_to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(h) => {
            let mut m = serde_json::Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) => s,
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    Yaml::Real(r) => r,
                    other => return Err(format!("unsupported mapping key {other:?}")),
                };
                m.insert(key, yaml_to_json(v)?);
            }
            Value::Object(m)
        }
        Yaml::Alias(_) => return Err("YAML aliases are not supported".into()),
    })
}

/// Why a spec failed.
#[derive(Debug)]
pub enum SpecFailure {
    Request(String),
    Status {
        expected: u16,
        got: u16,
        body: String,
    },
    NoTraceId {
        headers: String,
    },
    Fetch(FetchError),
    /// Not in the store, and the collector recorded a sampling decision for it.
    NotStored {
        fetch: FetchError,
        decision: collector_api::v1::SamplingDecision,
    },
    /// Still incomplete at the deadline (and the spec did not allow that).
    Incomplete {
        why: Vec<String>,
        tree: String,
    },
    Assertions {
        failed: Vec<AssertionError>,
        tree: String,
    },
}

impl fmt::Display for SpecFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecFailure::Request(e) => write!(f, "request failed: {e}"),
            SpecFailure::Status {
                expected,
                got,
                body,
            } => {
                write!(f, "expected status {expected}, got {got}: {body}")
            }
            SpecFailure::NoTraceId { headers } => {
                write!(
                    f,
                    "the response has no X-Trace-Id (or traceresponse) header; headers: {headers}"
                )
            }
            SpecFailure::Fetch(e) => write!(f, "{e}"),
            SpecFailure::NotStored { fetch, decision } => {
                use collector_api::v1::Decision;
                write!(f, "{fetch}: ")?;
                match decision.decision {
                    Decision::NotSampled => write!(
                        f,
                        "tail sampling dropped it ({}, after {} spans, trigger {:?}); \
                         the collector's /api/v1/sampling/decisions?traceID={} says so. Run the \
                         stack without tail sampling, or give the spec a request a policy keeps",
                        decision
                            .policy
                            .as_deref()
                            .map_or("no policy wanted it".to_string(), |p| format!("policy {p}")),
                        decision.span_count,
                        decision.trigger,
                        decision.trace_id
                    ),
                    Decision::Sampled => write!(
                        f,
                        "tail sampling kept it ({}), yet it never reached the query API: \
                         look at the pipeline after the sampler",
                        decision.policy.as_deref().unwrap_or("no policy named")
                    ),
                }
            }
            SpecFailure::Incomplete { why, tree } => {
                writeln!(
                    f,
                    "the trace was still incomplete at the deadline (set `wait.allow_incomplete: true` \
                     if a partial trace is what this spec expects):"
                )?;
                for w in why {
                    writeln!(f, "  - {w}")?;
                }
                writeln!(f)?;
                write!(f, "{tree}")
            }
            SpecFailure::Assertions { failed, tree } => {
                for (i, a) in failed.iter().enumerate() {
                    writeln!(f, "{}. expected: {}", i + 1, a.expected)?;
                    writeln!(f, "   found:    {}", a.found)?;
                }
                writeln!(f)?;
                write!(f, "{tree}")
            }
        }
    }
}

/// A spec's result.
#[derive(Debug)]
pub struct SpecOutcome {
    pub name: String,
    pub trace_id: Option<String>,
    pub status: Option<u16>,
    pub elapsed: Duration,
    /// Assertions checked (all of them when the request and fetch succeeded).
    pub checked: usize,
    pub result: Result<TraceView, SpecFailure>,
}

impl SpecOutcome {
    pub fn passed(&self) -> bool {
        self.result.is_ok()
    }
}

/// Runs specs against a gateway and a query API.
#[derive(Debug, Clone)]
pub struct SpecRunner {
    gateway: String,
    client: TraceClient,
    http: reqwest::Client,
}

impl SpecRunner {
    pub fn new(gateway_url: impl Into<String>, query_url: impl Into<String>) -> Self {
        Self {
            gateway: gateway_url.into().trim_end_matches('/').to_string(),
            client: TraceClient::new(query_url),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn client(&self) -> &TraceClient {
        &self.client
    }

    /// Sends the request, fetches its trace, checks every assertion.
    pub async fn run(&self, spec: &Spec) -> SpecOutcome {
        let started = Instant::now();
        let mut outcome = SpecOutcome {
            name: spec.name.clone(),
            trace_id: None,
            status: None,
            elapsed: Duration::ZERO,
            checked: 0,
            result: Err(SpecFailure::Request("not run".into())),
        };
        outcome.result = self.run_inner(spec, &mut outcome).await;
        outcome.elapsed = started.elapsed();
        outcome
    }

    async fn run_inner(
        &self,
        spec: &Spec,
        out: &mut SpecOutcome,
    ) -> Result<TraceView, SpecFailure> {
        if spec.request.backlog > 100 {
            return Err(SpecFailure::Request(format!(
                "request.backlog is {}, at most 100",
                spec.request.backlog
            )));
        }
        let backlog = (0..spec.request.backlog).map(|_| self.send(&spec.request));
        for sent in futures::future::join_all(backlog).await {
            let (status, _, body) = sent?;
            if let Some(expected) = spec.request.expect_status
                && expected != status
            {
                return Err(SpecFailure::Status {
                    expected,
                    got: status,
                    body: format!("(a backlog request) {body}"),
                });
            }
        }
        let window_start = now_us();
        let (status, trace_id, body) = self.send(&spec.request).await?;
        let window_end = now_us();
        out.status = Some(status);
        out.trace_id = trace_id.clone();
        if let Some(expected) = spec.request.expect_status
            && expected != status
        {
            return Err(SpecFailure::Status {
                expected,
                got: status,
                body,
            });
        }
        let trace_id = trace_id.ok_or_else(|| SpecFailure::NoTraceId {
            headers: "see the gateway's response".into(),
        })?;
        let view = match self.client.fetch_trace(&trace_id, &spec.wait).await {
            Ok(v) => v,
            Err(e @ FetchError::NotFound { .. }) => {
                // The collector may know why: tail sampling dropped the trace.
                let decision = self
                    .client
                    .sampling_decision(&trace_id)
                    .await
                    .ok()
                    .flatten();
                return Err(match decision {
                    Some(d) => SpecFailure::NotStored {
                        fetch: e,
                        decision: d,
                    },
                    None => SpecFailure::Fetch(e),
                });
            }
            Err(e) => return Err(SpecFailure::Fetch(e)),
        };
        if !view.is_complete() && !spec.wait.allow_incomplete {
            return Err(SpecFailure::Incomplete {
                why: incomplete_reasons(&view, &spec.wait),
                tree: view.tree(),
            });
        }
        let ctx = CheckContext {
            client: &self.client,
            window_start_us: window_start,
            window_end_us: window_end,
            search_deadline: spec.wait.deadline,
        };
        let mut failed = Vec::new();
        for a in &spec.assertions {
            out.checked += 1;
            if let Err(e) = a.check(&view, &ctx).await {
                failed.push(e);
            }
        }
        if failed.is_empty() {
            Ok(view)
        } else {
            Err(SpecFailure::Assertions {
                failed,
                tree: view.tree(),
            })
        }
    }

    /// Sends a request spec; returns status, trace id (from `X-Trace-Id` or `traceresponse`) and body.
    pub async fn send(
        &self,
        r: &RequestSpec,
    ) -> Result<(u16, Option<String>, String), SpecFailure> {
        let url = if r.url.starts_with("http://") || r.url.starts_with("https://") {
            r.url.clone()
        } else {
            format!("{}{}", self.gateway, r.url)
        };
        let method = reqwest::Method::from_bytes(r.method.to_ascii_uppercase().as_bytes())
            .map_err(|e| SpecFailure::Request(format!("method {}: {e}", r.method)))?;
        let mut req = self.http.request(method, &url);
        for (k, v) in &r.headers {
            req = req.header(k, v);
        }
        if let Some(b) = &r.body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| SpecFailure::Request(format!("{url}: {e}")))?;
        let status = resp.status().as_u16();
        let trace_id = trace_id_of(resp.headers());
        let body = resp.text().await.unwrap_or_default();
        Ok((status, trace_id, body))
    }
}

/// What kept `view` from counting as complete under `wait`.
fn incomplete_reasons(view: &TraceView, wait: &Wait) -> Vec<String> {
    let mut why = Vec::new();
    let orphans = view.missing_parent_spans();
    if !wait.allow_fragments && !orphans.is_empty() {
        let names: Vec<String> = orphans.iter().map(|s| s.label()).collect();
        why.push(format!(
            "{} span(s) point to a parent that never arrived: {}",
            orphans.len(),
            names.join(", ")
        ));
    }
    for m in &wait.until_present {
        if view.find(m).is_empty() {
            why.push(format!("{m} never arrived (wait.until_present)"));
        }
    }
    if why.is_empty() {
        why.push(format!(
            "the span count did not stay unchanged for {:?} before {:?}",
            wait.quiet_period, wait.deadline
        ));
    }
    why
}

/// The trace id of a response: `X-Trace-Id`, else the W3C `traceresponse` header's trace id.
pub fn trace_id_of(headers: &reqwest::header::HeaderMap) -> Option<String> {
    if let Some(id) = headers.get("x-trace-id").and_then(|v| v.to_str().ok()) {
        return Some(id.trim().to_ascii_lowercase());
    }
    let tr = headers.get("traceresponse")?.to_str().ok()?;
    tr.split('-').nth(1).map(str::to_ascii_lowercase)
}

/// Loads every `*.yaml` / `*.yml` spec in `dir`, sorted by file name.
pub fn load_dir(dir: &Path) -> Result<Vec<(std::path::PathBuf, Spec)>, SpecError> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|source| SpecError::Io {
            path: dir.display().to_string(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| Spec::from_file(&p).map(|s| (p, s)))
        .collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_comes_from_x_trace_id_or_traceresponse() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "traceresponse",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            trace_id_of(&h).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        h.insert(
            "x-trace-id",
            "0af7651916cd43dd8448eb211c80319c".parse().unwrap(),
        );
        assert_eq!(
            trace_id_of(&h).as_deref(),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        assert_eq!(trace_id_of(&reqwest::header::HeaderMap::new()), None);
    }

    #[test]
    fn yaml_scalars_map_to_json() {
        let docs = YamlLoader::load_from_str("a: 1\nb: 2.5\nc: true\nd: ~\ne: [x, 'y']\n").unwrap();
        let v = yaml_to_json(docs[0].clone()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": 1, "b": 2.5, "c": true, "d": null, "e": ["x", "y"]})
        );
    }
}
