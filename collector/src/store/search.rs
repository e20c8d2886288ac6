//! The Jaeger search (`/api/traces`, `/api/v1/traces`): one span must satisfy every condition;
//! a selective tag drives the search from the tag index (`attrs`), else spans are walked newest
//! first through the service or start index, each candidate checked against the tags by decoding
//! its body. Also the service and operation lists (from `operations`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use collector_api::jaeger::{Operation, Process, Trace};
use collector_api::v1::TraceSummary;
use futures::TryStreamExt;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, KeyValue as OtlpKeyValue, any_value::Value as AnyKind,
};
use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;
use prost::Message;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{
    SELECTIVE_TAG_TRACES, SearchOutcome, StoreError, TraceId, TraceQuery, TraceStore, convert,
    kind_name, trace_id_of,
};

/// A searched tag: its key, the text given and the typed values that text stands for.
struct TagWant {
    key: String,
    text: String,
    int: Option<i64>,
    float: Option<f64>,
    boolean: Option<bool>,
}

impl TagWant {
    fn new(key: &str, text: &str) -> Self {
        let t = text.trim();
        Self {
            key: key.to_string(),
            text: text.to_string(),
            int: t.parse().ok(),
            float: t.parse::<f64>().ok().filter(|f| f.is_finite()),
            boolean: if t.eq_ignore_ascii_case("true") {
                Some(true)
            } else if t.eq_ignore_ascii_case("false") {
                Some(false)
            } else {
                None
            },
        }
    }

    /// Every text the tag index may hold for a matching value (the index keeps
    /// `convert::value_text`: strings as is, ints, doubles and bools printed by Rust).
    fn index_texts(&self) -> Vec<String> {
        let mut v = vec![self.text.clone()];
        if let Some(i) = self.int {
            v.push(i.to_string());
        }
        if let Some(f) = self.float {
            v.push(f.to_string());
        }
        if let Some(b) = self.boolean {
            v.push(b.to_string());
        }
        v.sort();
        v.dedup();
        v
    }

    fn matches_any(&self, v: &AnyValue) -> bool {
        match v.value.as_ref() {
            Some(AnyKind::StringValue(s)) => *s == self.text,
            Some(AnyKind::BoolValue(b)) => self.boolean == Some(*b),
            Some(AnyKind::IntValue(i)) => self.int == Some(*i) || self.float == Some(*i as f64),
            Some(AnyKind::DoubleValue(d)) => self.float == Some(*d),
            _ => false,
        }
    }

    fn matches_json(&self, v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => *s == self.text,
            serde_json::Value::Bool(b) => self.boolean == Some(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => self.int == Some(i) || self.float == Some(i as f64),
                None => n.as_f64().is_some_and(|f| self.float == Some(f)),
            },
            _ => false,
        }
    }

    /// Against a value stored as text (scope attributes): any of its index texts.
    fn matches_text(&self, stored: &str) -> bool {
        self.index_texts().iter().any(|t| t == stored)
    }

    /// Whether the span itself (attributes, events, links, derived tags) or its resource carries it.
    fn on_span(&self, span: &OtlpSpan, status: i32, process: &Process) -> bool {
        let has = |kvs: &[OtlpKeyValue]| {
            kvs.iter().any(|kv| {
                kv.key == self.key && kv.value.as_ref().is_some_and(|v| self.matches_any(v))
            })
        };
        has(&span.attributes)
            || span.events.iter().any(|e| has(&e.attributes))
            || span.links.iter().any(|l| has(&l.attributes))
            || match self.key.as_str() {
                "error" => status == 2 && self.boolean == Some(true),
                "otel.status_code" => status == 2 && self.text == "ERROR",
                "span.kind" => !self.text.is_empty() && convert::kind_name(span.kind) == self.text,
                "service.name" => process.service_name == self.text,
                _ => false,
            }
            || process
                .tags
                .iter()
                .any(|t| t.key == self.key && self.matches_json(&t.value))
    }
}

/// Appends `(?, ?, …)` binding each text.
fn push_text_list(qb: &mut QueryBuilder<Sqlite>, texts: Vec<String>) {
    qb.push("(");
    let mut sep = qb.separated(", ");
    for t in texts {
        sep.push_bind(t);
    }
    qb.push(")");
}

impl TraceStore {
    /// Trace ids matching `q`, newest first (by the matching span's start), at most `q.limit`.
    pub async fn find_trace_ids(&self, q: &TraceQuery) -> Result<Vec<TraceId>, StoreError> {
        Ok(self.search_trace_ids(q).await?.ids)
    }

    /// Most span rows one search examines (default [`MAX_SEARCH_SCAN`]); tests lower it.
    pub fn set_search_scan_bound(&self, rows: usize) {
        self.search_scan_bound.store(rows.max(1), Ordering::Relaxed);
    }

    /// The search behind Jaeger's `/api/traces` and `/api/v1/traces`, with Jaeger's semantics:
    /// a trace matches when ONE of its spans satisfies every condition together — service,
    /// operation, time and duration bounds, status and every tag. A tag holds on a span when the
    /// span's attributes, its events' or links' attributes, its resource's or its scope's
    /// attributes carry it (or it is a derived tag: `error=true`, `otel.status_code=ERROR`,
    /// `span.kind`); a value given as text matches string attributes exactly and int, double and
    /// bool attributes by value (`7` matches 7 and 7.0, `72.50` matches 72.5, `TRUE` matches true).
    /// The trace-level tag index only narrows the candidates; each candidate span is then checked.
    /// Newest first (by the matching span's start), at most `q.limit`; when the scan stops at its
    /// bound before `limit` traces were found, `scan_bound_hit` says the answer may be short.
    pub async fn search_trace_ids(&self, q: &TraceQuery) -> Result<SearchOutcome, StoreError> {
        let wants: Vec<TagWant> = q.tags.iter().map(|(k, v)| TagWant::new(k, v)).collect();
        // A selective tag (an order id, a user id) drives the search from the tag index: walking
        // spans newest-first and probing the tag would scan most of the store for one match.
        // Resource attributes are indexed once per resource (`resource_attrs`), not per trace: a
        // tag some resource carries may hold on any number of traces, so it never drives, and
        // its filter also accepts spans of those resources.
        let mut in_resources = Vec::with_capacity(wants.len());
        for w in &wants {
            let mut qb: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT EXISTS (SELECT 1 FROM resource_attrs WHERE key = ");
            qb.push_bind(w.key.clone()).push(" AND value IN ");
            push_text_list(&mut qb, w.index_texts());
            qb.push(")");
            let any: bool = qb.build_query_scalar().fetch_one(&self.read).await?;
            in_resources.push(any);
        }
        let mut driving: Option<usize> = None;
        let mut fewest = SELECTIVE_TAG_TRACES + 1;
        for (i, w) in wants.iter().enumerate() {
            if in_resources[i] {
                continue;
            }
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT COUNT(*) FROM (SELECT DISTINCT trace_id FROM attrs WHERE key = ",
            );
            qb.push_bind(w.key.clone()).push(" AND value IN ");
            push_text_list(&mut qb, w.index_texts());
            qb.push(" LIMIT ")
                .push_bind(SELECTIVE_TAG_TRACES as i64 + 1)
                .push(")");
            let n: i64 = qb.build_query_scalar().fetch_one(&self.read).await?;
            if (n as usize) < fewest {
                fewest = n as usize;
                driving = Some(i);
            }
        }
        if fewest == 0 {
            return Ok(SearchOutcome::default());
        }
        // Whether any scope carries each tag (else its scope lookups are skipped).
        let mut in_scopes = Vec::with_capacity(wants.len());
        for w in &wants {
            let mut qb: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT EXISTS (SELECT 1 FROM scope_attrs WHERE key = ");
            qb.push_bind(w.key.clone()).push(" AND value IN ");
            push_text_list(&mut qb, w.index_texts());
            qb.push(")");
            let any: bool = qb.build_query_scalar().fetch_one(&self.read).await?;
            in_scopes.push(any);
        }
        let columns = if wants.is_empty() {
            "s.trace_id"
        } else {
            "s.trace_id, s.body, s.resource_id, s.status, s.scope_name, s.scope_version"
        };
        let mut qb: QueryBuilder<Sqlite> = match driving {
            Some(i) => {
                let mut qb = QueryBuilder::new(format!(
                    "SELECT {columns} FROM (SELECT DISTINCT trace_id FROM attrs WHERE key = "
                ));
                qb.push_bind(wants[i].key.clone()).push(" AND value IN ");
                push_text_list(&mut qb, wants[i].index_texts());
                qb.push(
                    ") a CROSS JOIN spans s INDEXED BY spans_trace_window \
                     ON s.trace_id = a.trace_id WHERE 1 = 1",
                );
                qb
            }
            None => QueryBuilder::new(format!("SELECT {columns} FROM spans s WHERE 1 = 1")),
        };
        if let Some(s) = &q.service {
            qb.push(" AND s.service = ").push_bind(s.clone());
        }
        if let Some(o) = &q.operation {
            qb.push(" AND s.name = ").push_bind(o.clone());
        }
        if let Some(t) = q.start_us {
            qb.push(" AND s.start_us >= ").push_bind(t as i64);
        }
        if let Some(t) = q.end_us {
            qb.push(" AND s.start_us <= ").push_bind(t as i64);
        }
        if let Some(d) = q.min_duration_us {
            qb.push(" AND s.duration_us >= ").push_bind(d as i64);
        }
        if let Some(d) = q.max_duration_us {
            qb.push(" AND s.duration_us <= ").push_bind(d as i64);
        }
        if q.errors_only {
            qb.push(" AND s.status = 2");
        }
        for (i, w) in wants.iter().enumerate() {
            if Some(i) == driving {
                continue;
            }
            qb.push(" AND (s.trace_id IN (SELECT trace_id FROM attrs WHERE key = ")
                .push_bind(w.key.clone())
                .push(" AND value IN ");
            push_text_list(&mut qb, w.index_texts());
            qb.push(")");
            if in_resources[i] {
                qb.push(
                    " OR s.resource_id IN (SELECT resource_id FROM resource_attrs WHERE key = ",
                )
                .push_bind(w.key.clone())
                .push(" AND value IN ");
                push_text_list(&mut qb, w.index_texts());
                qb.push(")");
            }
            qb.push(")");
        }
        qb.push(" ORDER BY s.start_us DESC");
        let limit = q.limit.max(1);
        let bound = self.search_scan_bound.load(Ordering::Relaxed);
        let mut seen: HashSet<TraceId> = HashSet::new();
        let mut out = SearchOutcome::default();
        let mut scopes: HashMap<(TraceId, String, String), Vec<(String, String)>> = HashMap::new();
        let query = qb.build();
        let mut stream = query.fetch(&self.read);
        let mut scanned = 0usize;
        while let Some(row) = stream.try_next().await? {
            if scanned >= bound {
                out.scan_bound_hit = true;
                break;
            }
            scanned += 1;
            let t = trace_id_of(row.get::<&[u8], _>(0));
            if seen.contains(&t) {
                continue;
            }
            if !wants.is_empty() {
                let span = OtlpSpan::decode(row.get::<&[u8], _>(1))?;
                let process = self.process(row.get(2)).await?;
                let status: i32 = row.get(3);
                let scope_key = (t, row.get::<String, _>(4), row.get::<String, _>(5));
                let mut holds = true;
                for (w, in_scope) in wants.iter().zip(&in_scopes) {
                    if w.on_span(&span, status, &process) {
                        continue;
                    }
                    if *in_scope {
                        if !scopes.contains_key(&scope_key) {
                            let kvs = self.scope_attrs_of(&scope_key).await?;
                            scopes.insert(scope_key.clone(), kvs);
                        }
                        if scopes[&scope_key]
                            .iter()
                            .any(|(k, v)| *k == w.key && w.matches_text(v))
                        {
                            continue;
                        }
                    }
                    holds = false;
                    break;
                }
                if !holds {
                    continue;
                }
            }
            seen.insert(t);
            out.ids.push(t);
            if out.ids.len() >= limit {
                break;
            }
        }
        out.scanned = scanned;
        Ok(out)
    }

    async fn scope_attrs_of(
        &self,
        (t, name, version): &(TraceId, String, String),
    ) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT key, value FROM scope_attrs WHERE trace_id = $1 AND scope_name = $2 AND scope_version = $3",
        )
        .bind(t.to_vec())
        .bind(name)
        .bind(version)
        .fetch_all(&self.read)
        .await?)
    }

    /// Whole traces matching `q` (the Jaeger search).
    pub async fn find_traces(&self, q: &TraceQuery) -> Result<Vec<Trace>, StoreError> {
        Ok(self.search_traces(q).await?.0)
    }

    /// [`find_traces`](Self::find_traces) and the search's warnings (see [`SearchOutcome::warnings`]).
    pub async fn search_traces(
        &self,
        q: &TraceQuery,
    ) -> Result<(Vec<Trace>, Vec<String>), StoreError> {
        let found = self.search_trace_ids(q).await?;
        let mut out = Vec::with_capacity(found.ids.len());
        for id in &found.ids {
            if let Some(t) = self.get_trace(id).await? {
                out.push(t);
            }
        }
        Ok((out, found.warnings()))
    }

    /// Summaries of the traces matching `q`.
    pub async fn find_trace_summaries(
        &self,
        q: &TraceQuery,
    ) -> Result<Vec<TraceSummary>, StoreError> {
        Ok(self.search_trace_summaries(q).await?.0)
    }

    /// [`find_trace_summaries`](Self::find_trace_summaries) and the search's warnings.
    pub async fn search_trace_summaries(
        &self,
        q: &TraceQuery,
    ) -> Result<(Vec<TraceSummary>, Vec<String>), StoreError> {
        let found = self.search_trace_ids(q).await?;
        let mut out = Vec::with_capacity(found.ids.len());
        for id in &found.ids {
            if let Some(s) = self.trace_summary(id).await? {
                out.push(s);
            }
        }
        Ok((out, found.warnings()))
    }

    /// Service names, sorted.
    pub async fn services(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT service FROM operations ORDER BY service")
                .fetch_all(&self.read)
                .await?,
        )
    }

    /// Operations of a service (optionally of one OTLP span kind), sorted by name.
    pub async fn operations(
        &self,
        service: &str,
        kind: Option<i32>,
    ) -> Result<Vec<Operation>, StoreError> {
        let rows: Vec<(String, i32)> = sqlx::query_as(
            "SELECT name, kind FROM operations WHERE service = $1 AND ($2 IS NULL OR kind = $2) ORDER BY name, kind",
        )
        .bind(service)
        .bind(kind)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, kind)| Operation {
                name,
                span_kind: kind_name(kind).to_string(),
            })
            .collect())
    }
}
