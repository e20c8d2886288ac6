//! The embedded trace store behind the `tracelab` exporter and the query API: SQLite (through the
//! workspace's sqlx) in WAL mode in a data directory. Spans, OTLP log records and sampling decisions
//! are written in batched transactions; reads serve the Jaeger API (whole traces, search, services,
//! operations, dependencies) and tracelab's `/api/v1` (windowed span reads, summaries, logs, facts
//! about many traces at once for comparing stores).
//! Bounded by span count, database size and age; pruning removes whole traces, oldest first.
//! Why SQLite: see `collector/README.md`.

mod convert;
#[cfg(test)]
mod map_tests;
mod schema;
mod service_map;
#[cfg(test)]
mod tests;

pub use convert::{UNKNOWN_SERVICE, kind_from_name, kind_name};
pub use service_map::{bucket_of, bucket_value, percentile};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use collector_api::ids::hex_id;
use collector_api::jaeger::{DependencyLink, KeyValue, Operation, Process, Span, Trace};
use collector_api::sampling::{DecisionCounts, SamplingLabResult};
use collector_api::v1::{
    Decision, DecisionTrigger, LogRecord, SamplingDecision, ServiceSpanCount, SpanWindow,
    TraceFacts, TraceSummary,
};
use futures::TryStreamExt;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, KeyValue as OtlpKeyValue, any_value::Value as AnyKind,
};
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span as OtlpSpan};
use prost::Message;
use serde::Deserialize;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};

use crate::component::FieldError;

pub type TraceId = [u8; 16];

/// Where and how much to keep.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Data directory; the database is `traces.db` inside it. Created when missing.
    pub directory: PathBuf,
    /// Most spans kept; beyond it the oldest traces are removed whole.
    pub max_spans: u64,
    /// Most database bytes in use (pages holding data), in MiB.
    pub max_size_mib: u64,
    /// Spans, logs and decisions older than this (by start time) are removed (Go duration).
    #[serde(deserialize_with = "crate::component::duration::deserialize")]
    pub retention: Duration,
    /// Most log records kept.
    pub max_logs: u64,
    /// Most sampling decisions kept (for the sampling dashboard).
    pub max_decisions: u64,
    /// SQLite page cache bound per connection, in MiB (one writer + up to 4 readers); part of
    /// memory_limiter's `measure: heap` when jemalloc is the allocator.
    pub cache_size_mib: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            directory: PathBuf::from("data/collector"),
            max_spans: 2_000_000,
            max_size_mib: 2048,
            retention: Duration::from_secs(24 * 3600),
            max_logs: 1_000_000,
            max_decisions: 100_000,
            cache_size_mib: 16,
        }
    }
}

impl StoreConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.directory.as_os_str().is_empty() {
            return Err(FieldError::new("directory", "must not be empty"));
        }
        if self.max_spans == 0 {
            return Err(FieldError::new("max_spans", "must be at least 1"));
        }
        if self.max_size_mib == 0 {
            return Err(FieldError::new("max_size_mib", "must be at least 1"));
        }
        if self.cache_size_mib == 0 || self.cache_size_mib > 4096 {
            return Err(FieldError::new(
                "cache_size_mib",
                "must be between 1 and 4096",
            ));
        }
        if self.retention.is_zero() {
            return Err(FieldError::new(
                "retention",
                "must be greater than 0 (e.g. 24h)",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("trace store database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("trace store directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("trace store {0}")]
    Schema(String),
    #[error("stored span could not be decoded: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("stored JSON could not be read or written: {0}")]
    Json(#[from] serde_json::Error),
}

/// A trace search: every condition, tags included, must hold on one span of the trace (Jaeger's
/// semantics; see [`TraceStore::search_trace_ids`]). Results newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceQuery {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub tags: Vec<(String, String)>,
    pub min_duration_us: Option<u64>,
    pub max_duration_us: Option<u64>,
    /// Span start time bounds, µs since the epoch.
    pub start_us: Option<u64>,
    pub end_us: Option<u64>,
    /// Only spans with status ERROR.
    pub errors_only: bool,
    pub limit: usize,
}

/// A span without its body: what a trace's tree is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanHeader {
    /// The span's row in the store (to fetch its body later).
    pub row: i64,
    /// The span id's last 8 bytes as a number (OTLP span ids are 8 bytes).
    pub span_id: u64,
    pub parent_id: Option<u64>,
    pub service: String,
    pub name: String,
    /// OTLP span kind.
    pub kind: i32,
    pub start_us: u64,
    pub duration_us: u64,
    pub error: bool,
}

/// An OTLP span id's last 8 bytes as a number; `format!("{:016x}")` gives back its hex.
pub fn span_key(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .take(8)
        .rev()
        .fold(0u64, |k, b| (k << 8) | u64::from(*b))
}

/// One group of [`TraceStore::decision_timeline`]: a processor's decisions credited to one policy
/// (`None`: no policy matched) in one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineRow {
    pub processor: String,
    pub policy: Option<String>,
    /// Index of the bucket from the timeline's start.
    pub bucket: i64,
    pub counts: DecisionCounts,
}

/// What a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub traces: u64,
    pub spans: u64,
    pub logs: u64,
    pub decisions: u64,
}

/// Size figures for `/metrics` and the bench.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Distinct traces with at least one stored span.
    pub traces: u64,
    pub spans: u64,
    pub logs: u64,
    pub used_bytes: u64,
    pub file_bytes: u64,
}

/// Rows scanned at most by one search, so a broad query over a million spans stays bounded.
const MAX_SEARCH_SCAN: usize = 200_000;
/// Rows per multi-row INSERT (13 binds each stays under SQLite's 32766 variables).
const INSERT_CHUNK: usize = 1000;
/// Sampling-lab results kept (the dashboard shows the latest).
const LAB_RESULTS_KEPT: i64 = 10;
/// A tag matching at most this many traces drives a search from the tag index.
const SELECTIVE_TAG_TRACES: usize = 5000;
/// Attribute values longer than this are not indexed for tag search (payloads, SQL text).
const MAX_INDEXED_VALUE: usize = 256;
/// What a search found, and whether it stopped at its scan bound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchOutcome {
    pub ids: Vec<TraceId>,
    /// Span rows examined.
    pub scanned: usize,
    /// The scan stopped at its bound before `limit` traces were found: there may be more.
    pub scan_bound_hit: bool,
}

impl SearchOutcome {
    /// Jaeger-style warnings for the response: empty unless the scan bound was hit.
    pub fn warnings(&self) -> Vec<String> {
        if self.scan_bound_hit {
            vec![format!(
                "search stopped after examining {} spans (the store's scan bound) and found {} traces; \
                 more may match: narrow the time range or add a service, operation or tag",
                self.scanned,
                self.ids.len()
            )]
        } else {
            Vec::new()
        }
    }
}

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

/// Trace ids per `IN (...)` list (one bind each).
const ID_CHUNK: usize = 500;

/// Appends `(?, ?, …)` binding each id.
fn push_id_list(qb: &mut QueryBuilder<Sqlite>, ids: impl IntoIterator<Item = Vec<u8>>) {
    qb.push("(");
    let mut sep = qb.separated(", ");
    for id in ids {
        sep.push_bind(id);
    }
    qb.push(")");
}

#[derive(Debug, Default)]
struct ResourceCache {
    by_fingerprint: HashMap<u64, i64>,
    by_id: HashMap<i64, Arc<Process>>,
}

/// The store. Cheap to share behind an `Arc`; all methods take `&self`.
#[derive(Debug)]
pub struct TraceStore {
    cfg: StoreConfig,
    read: SqlitePool,
    /// One connection: SQLite has one writer; queuing in the pool beats SQLITE_BUSY retries.
    write: SqlitePool,
    /// Distinct traces stored: counted when a batch brings a trace the store did not hold, and when
    /// a trace is removed (both inside the single writer's transactions, so exact).
    traces: AtomicU64,
    spans: AtomicU64,
    logs: AtomicU64,
    resources: Mutex<ResourceCache>,
    operations: Mutex<HashSet<(String, String, i32)>>,
    /// Span rows one search examines at most ([`MAX_SEARCH_SCAN`]).
    search_scan_bound: AtomicUsize,
    /// Bumped after every committed change to the spans table: a reader that saw the same value
    /// before and after knows no span was added or removed in between (the query API's trace
    /// trees skip re-counting a trace then).
    span_generation: AtomicU64,
    /// Service-map children waiting for their parent span. Held across a whole insert (taken
    /// before the write transaction), so a parent never misses a child staged by the previous batch.
    map_pending: tokio::sync::Mutex<service_map::Pending>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn fnv64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter().chain(std::iter::once(&0xffu8)) {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn trace_id_of(bytes: &[u8]) -> TraceId {
    let mut id = [0u8; 16];
    let n = bytes.len().min(16);
    id[16 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    id
}

struct SpanRow {
    trace_id: TraceId,
    span_id: Vec<u8>,
    parent_id: Option<Vec<u8>>,
    service_idx: usize,
    name: String,
    kind: i32,
    start_us: i64,
    duration_us: i64,
    status: i32,
    resource_id: i64,
    scope_name: String,
    scope_version: String,
    body: Vec<u8>,
    /// The parent (or a consumer's linked producer) and what the service map needs of the span.
    reference: Option<(TraceId, Vec<u8>)>,
    map: service_map::Child,
}

impl TraceStore {
    /// Opens (creating when missing) the database in `cfg.directory`.
    pub async fn open(cfg: StoreConfig) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&cfg.directory).map_err(|source| StoreError::Io {
            path: cfg.directory.clone(),
            source,
        })?;
        let path = cfg.directory.join("traces.db");
        let opts = SqliteConnectOptions::from_str("sqlite:")?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: a crash may lose the last transactions but never corrupts the file.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            // Negative: a size in KiB, not pages.
            .pragma("cache_size", format!("-{}", cfg.cache_size_mib * 1024))
            .pragma("temp_store", "memory")
            .pragma("journal_size_limit", "67108864")
            // Keeps `PRAGMA optimize` (run after pruning) quick on big tables.
            .pragma("analysis_limit", "400");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        let mut version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&write)
            .await?;
        if version == 0 {
            // A file from before versioning has tables but no version: it is a version 1 file.
            let has_spans: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'spans'",
            )
            .fetch_one(&write)
            .await?;
            if has_spans > 0 {
                version = 1;
            }
        }
        if version != 0 && version != schema::SCHEMA_VERSION {
            let mut tx = write.begin().await?;
            while let Some((_, steps)) = schema::MIGRATIONS.iter().find(|(v, _)| *v == version) {
                for step in *steps {
                    sqlx::query(*step).execute(&mut *tx).await?;
                }
                version += 1;
            }
            if version != schema::SCHEMA_VERSION {
                return Err(StoreError::Schema(format!(
                    "{} has schema version {version}, this collector reads version {}; move the directory away",
                    path.display(),
                    schema::SCHEMA_VERSION
                )));
            }
            tx.commit().await?;
            tracing::info!(path = %path.display(), version, "trace store: schema upgraded");
        }
        for ddl in schema::DDL {
            sqlx::query(*ddl).execute(&write).await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA user_version = {}",
            schema::SCHEMA_VERSION
        )))
        .execute(&write)
        .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await?;
        let spans: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM spans")
            .fetch_one(&read)
            .await?;
        // A walk of the (trace_id, …) index, once at open.
        let traces: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM (SELECT DISTINCT trace_id FROM spans)")
                .fetch_one(&read)
                .await?;
        let logs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM logs")
            .fetch_one(&read)
            .await?;
        let ops: Vec<(String, String, i32)> =
            sqlx::query_as("SELECT service, name, kind FROM operations")
                .fetch_all(&read)
                .await?;
        Self::map_backfill(&write, &read).await?;
        let pending = Self::load_pending(&read).await?;
        Ok(Self {
            cfg,
            read,
            write,
            traces: AtomicU64::new(traces as u64),
            spans: AtomicU64::new(spans as u64),
            logs: AtomicU64::new(logs as u64),
            resources: Mutex::new(ResourceCache::default()),
            operations: Mutex::new(ops.into_iter().collect()),
            search_scan_bound: AtomicUsize::new(MAX_SEARCH_SCAN),
            span_generation: AtomicU64::new(0),
            map_pending: tokio::sync::Mutex::new(pending),
        })
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Spans stored (kept in memory, exact).
    pub fn span_count(&self) -> u64 {
        self.spans.load(Ordering::Relaxed)
    }

    /// Changes when spans were added or removed (see the field); read it BEFORE reading spans.
    pub fn span_generation(&self) -> u64 {
        self.span_generation.load(Ordering::Acquire)
    }

    /// Distinct traces stored (kept in memory, exact).
    pub fn trace_count(&self) -> u64 {
        self.traces.load(Ordering::Relaxed)
    }

    /// How many of `ids` have at least one span, read within `tx`.
    async fn count_stored_traces(
        tx: &mut sqlx::Transaction<'_, Sqlite>,
        ids: &[Vec<u8>],
    ) -> Result<u64, StoreError> {
        let mut n = 0;
        for chunk in ids.chunks(ID_CHUNK) {
            let mut qb: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT COUNT(DISTINCT trace_id) FROM spans WHERE trace_id IN ");
            push_id_list(&mut qb, chunk.iter().cloned());
            let c: i64 = qb.build_query_scalar().fetch_one(&mut **tx).await?;
            n += c as u64;
        }
        Ok(n)
    }

    /// Closes the pools (checkpointing the WAL).
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// Resource id for a (service, tags) pair, inserting it when new.
    async fn resource_id(
        &self,
        tx: &mut sqlx::Transaction<'_, Sqlite>,
        service: &str,
        tags: Vec<KeyValue>,
    ) -> Result<i64, StoreError> {
        let tags_json = serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into());
        let fp = fnv64(&[service.as_bytes(), tags_json.as_bytes()]);
        if let Some(id) = lock(&self.resources).by_fingerprint.get(&fp) {
            return Ok(*id);
        }
        // Stored as i64: SQLite integers are signed.
        let fp_i = fp as i64;
        sqlx::query(
            "INSERT OR IGNORE INTO resources (fingerprint, service, tags) VALUES ($1, $2, $3)",
        )
        .bind(fp_i)
        .bind(service)
        .bind(&tags_json)
        .execute(&mut **tx)
        .await?;
        let id: i64 = sqlx::query_scalar("SELECT id FROM resources WHERE fingerprint = $1")
            .bind(fp_i)
            .fetch_one(&mut **tx)
            .await?;
        let mut cache = lock(&self.resources);
        cache.by_fingerprint.insert(fp, id);
        cache.by_id.insert(
            id,
            Arc::new(Process {
                service_name: service.to_string(),
                tags,
            }),
        );
        Ok(id)
    }

    /// Stores a batch of spans in one transaction; returns the number stored (a span whose trace
    /// id and span id are stored already is skipped, so a retried export is stored once).
    pub async fn insert_spans(&self, batch: &[ResourceSpans]) -> Result<u64, StoreError> {
        let mut pending = self.map_pending.lock().await;
        let mut tx = self.write.begin().await?;
        let mut services: Vec<String> = Vec::new();
        let mut rows: Vec<SpanRow> = Vec::new();
        let mut attrs: HashSet<(String, String, TraceId)> = HashSet::new();
        let mut scope_attrs: HashSet<(TraceId, String, String, String, String)> = HashSet::new();
        let mut new_ops: Vec<(String, String, i32)> = Vec::new();
        for rs in batch {
            let res_attrs = rs
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or(&[]);
            let (service, tags) = convert::process_of(res_attrs);
            let service_idx = services
                .iter()
                .position(|s| *s == service)
                .unwrap_or_else(|| {
                    services.push(service.clone());
                    services.len() - 1
                });
            let resource_id = self.resource_id(&mut tx, &service, tags).await?;
            let mut traces_of_resource: HashSet<TraceId> = HashSet::new();
            for ss in &rs.scope_spans {
                let (scope_name, scope_version) = ss
                    .scope
                    .as_ref()
                    .map_or((String::new(), String::new()), |s| {
                        (s.name.clone(), s.version.clone())
                    });
                let scope_kvs = ss
                    .scope
                    .as_ref()
                    .map_or(&[][..], |s| s.attributes.as_slice());
                for s in &ss.spans {
                    let trace_id = trace_id_of(&s.trace_id);
                    traces_of_resource.insert(trace_id);
                    // Tags are searched in the span's, its events' and its links' attributes.
                    let own = s
                        .attributes
                        .iter()
                        .chain(s.events.iter().flat_map(|e| &e.attributes))
                        .chain(s.links.iter().flat_map(|l| &l.attributes));
                    for kv in own {
                        if let Some(v) = kv.value.as_ref().and_then(convert::value_text)
                            && v.len() <= MAX_INDEXED_VALUE
                        {
                            attrs.insert((kv.key.clone(), v, trace_id));
                        }
                    }
                    for kv in scope_kvs {
                        if let Some(v) = kv.value.as_ref().and_then(convert::value_text)
                            && v.len() <= MAX_INDEXED_VALUE
                        {
                            attrs.insert((kv.key.clone(), v.clone(), trace_id));
                            scope_attrs.insert((
                                trace_id,
                                scope_name.clone(),
                                scope_version.clone(),
                                kv.key.clone(),
                                v,
                            ));
                        }
                    }
                    let status = s.status.as_ref().map_or(0, |st| st.code);
                    if status == 2 {
                        attrs.insert(("error".into(), "true".into(), trace_id));
                        attrs.insert(("otel.status_code".into(), "ERROR".into(), trace_id));
                    }
                    let kind = convert::kind_name(s.kind);
                    if !kind.is_empty() {
                        attrs.insert(("span.kind".into(), kind.into(), trace_id));
                    }
                    let op = (service.clone(), s.name.clone(), s.kind);
                    if !lock(&self.operations).contains(&op) && !new_ops.contains(&op) {
                        new_ops.push(op);
                    }
                    let start_us = (s.start_time_unix_nano / 1000) as i64;
                    let parent = (!s.parent_span_id.is_empty()
                        && s.parent_span_id.iter().any(|b| *b != 0))
                    .then(|| s.parent_span_id.clone());
                    let duration_us = ((s.end_time_unix_nano / 1000) as i64 - start_us).max(0);
                    rows.push(SpanRow {
                        trace_id,
                        span_id: s.span_id.clone(),
                        parent_id: parent,
                        service_idx,
                        name: s.name.clone(),
                        kind: s.kind,
                        start_us,
                        duration_us,
                        status,
                        resource_id,
                        scope_name: scope_name.clone(),
                        scope_version: scope_version.clone(),
                        body: s.encode_to_vec(),
                        reference: service_map::reference_of(s),
                        map: service_map::Child::of(&service, s, start_us, duration_us, status),
                    });
                }
            }
            // Process tags are searchable like Jaeger's (resource attributes, per trace).
            for kv in res_attrs {
                if let Some(v) = kv.value.as_ref().and_then(convert::value_text)
                    && v.len() <= MAX_INDEXED_VALUE
                {
                    for t in &traces_of_resource {
                        attrs.insert((kv.key.clone(), v.clone(), *t));
                    }
                }
            }
        }
        let batch_traces: Vec<Vec<u8>> = rows
            .iter()
            .map(|r| r.trace_id)
            .collect::<HashSet<TraceId>>()
            .into_iter()
            .map(|t| t.to_vec())
            .collect();
        let known = Self::count_stored_traces(&mut tx, &batch_traces).await?;
        let new_traces = batch_traces.len() as u64 - known.min(batch_traces.len() as u64);
        let mut stored = 0u64;
        // The rows really inserted (not skipped as already stored): what the service map counts.
        let mut inserted: HashSet<(TraceId, Vec<u8>)> = HashSet::with_capacity(rows.len());
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO spans (trace_id, span_id, parent_id, service, name, kind, start_us, duration_us, \
                 status, resource_id, scope_name, scope_version, body) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(r.trace_id.to_vec())
                    .push_bind(r.span_id.clone())
                    .push_bind(r.parent_id.clone())
                    .push_bind(services[r.service_idx].clone())
                    .push_bind(r.name.clone())
                    .push_bind(r.kind)
                    .push_bind(r.start_us)
                    .push_bind(r.duration_us)
                    .push_bind(r.status)
                    .push_bind(r.resource_id)
                    .push_bind(r.scope_name.clone())
                    .push_bind(r.scope_version.clone())
                    .push_bind(r.body.clone());
            });
            // A span already stored (a retried export) is skipped: one row per (trace, span).
            qb.push(" ON CONFLICT (span_id, trace_id) DO NOTHING RETURNING trace_id, span_id");
            for r in qb.build().fetch_all(&mut *tx).await? {
                inserted.insert((trace_id_of(r.get::<&[u8], _>(0)), r.get(1)));
            }
        }
        stored += inserted.len() as u64;
        let map_spans: Vec<service_map::MapSpan> = rows
            .into_iter()
            .filter(|r| inserted.remove(&(r.trace_id, r.span_id.clone())))
            .map(|r| service_map::MapSpan {
                trace_id: r.trace_id,
                span_id: r.span_id,
                reference: r.reference,
                child: r.map,
            })
            .collect();
        let map_change = Self::map_insert(&mut tx, &pending, &map_spans).await?;
        let attrs: Vec<_> = attrs.into_iter().collect();
        for chunk in attrs.chunks(INSERT_CHUNK * 3) {
            let mut qb: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT OR IGNORE INTO attrs (key, value, trace_id) ");
            qb.push_values(chunk, |mut b, (k, v, t)| {
                b.push_bind(k.clone())
                    .push_bind(v.clone())
                    .push_bind(t.to_vec());
            });
            qb.build().execute(&mut *tx).await?;
        }
        let scope_attrs: Vec<_> = scope_attrs.into_iter().collect();
        for chunk in scope_attrs.chunks(INSERT_CHUNK * 3) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT OR IGNORE INTO scope_attrs (trace_id, scope_name, scope_version, key, value) ",
            );
            qb.push_values(chunk, |mut b, (t, n, v, k, val)| {
                b.push_bind(t.to_vec())
                    .push_bind(n.clone())
                    .push_bind(v.clone())
                    .push_bind(k.clone())
                    .push_bind(val.clone());
            });
            qb.build().execute(&mut *tx).await?;
        }
        for (service, name, kind) in &new_ops {
            sqlx::query(
                "INSERT OR IGNORE INTO operations (service, name, kind) VALUES ($1, $2, $3)",
            )
            .bind(service)
            .bind(name)
            .bind(kind)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.span_generation.fetch_add(1, Ordering::Release);
        map_change.apply(&mut pending);
        drop(pending);
        self.traces.fetch_add(new_traces, Ordering::Relaxed);
        lock(&self.operations).extend(new_ops);
        let n = stored;
        let total = self.spans.fetch_add(n, Ordering::Relaxed) + n;
        if total > self.cfg.max_spans {
            self.prune_to_span_count(self.cfg.max_spans).await?;
        }
        Ok(n)
    }

    /// Stores OTLP log records; returns the number stored.
    pub async fn insert_logs(&self, batch: &[ResourceLogs]) -> Result<u64, StoreError> {
        let mut tx = self.write.begin().await?;
        let mut n = 0u64;
        for rl in batch {
            let res_attrs = rl
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or(&[]);
            let (service, tags) = convert::process_of(res_attrs);
            let resource_id = self.resource_id(&mut tx, &service, tags).await?;
            let records: Vec<_> = rl
                .scope_logs
                .iter()
                .flat_map(|sl| sl.log_records.iter())
                .collect();
            for chunk in records.chunks(INSERT_CHUNK) {
                let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                    "INSERT INTO logs (trace_id, span_id, time_us, severity_number, severity_text, service, body, \
                     attributes, resource_id) ",
                );
                qb.push_values(chunk, |mut b, r| {
                    let ts = if r.time_unix_nano != 0 {
                        r.time_unix_nano
                    } else {
                        r.observed_time_unix_nano
                    };
                    let attrs: Vec<KeyValue> = r.attributes.iter().map(convert::tag).collect();
                    let nonzero = |v: &Vec<u8>| {
                        (!v.is_empty() && v.iter().any(|b| *b != 0)).then(|| v.clone())
                    };
                    b.push_bind(nonzero(&r.trace_id).map(|t| trace_id_of(&t).to_vec()))
                        .push_bind(nonzero(&r.span_id))
                        .push_bind((ts / 1000) as i64)
                        .push_bind(r.severity_number)
                        .push_bind(r.severity_text.clone())
                        .push_bind(service.clone())
                        .push_bind(convert::body_text(r.body.as_ref()))
                        .push_bind(serde_json::to_string(&attrs).unwrap_or_else(|_| "[]".into()))
                        .push_bind(resource_id);
                });
                qb.build().execute(&mut *tx).await?;
                n += chunk.len() as u64;
            }
        }
        tx.commit().await?;
        let total = self.logs.fetch_add(n, Ordering::Relaxed) + n;
        if total > self.cfg.max_logs {
            let excess = total - self.cfg.max_logs;
            let removed = sqlx::query(
                "DELETE FROM logs WHERE id IN (SELECT id FROM logs ORDER BY id LIMIT $1)",
            )
            .bind(excess as i64)
            .execute(&self.write)
            .await?
            .rows_affected();
            self.logs.fetch_sub(removed, Ordering::Relaxed);
        }
        Ok(n)
    }

    /// Persists sampling decisions (for the dashboard's history).
    pub async fn insert_decisions(&self, decisions: &[SamplingDecision]) -> Result<(), StoreError> {
        if decisions.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        for chunk in decisions.chunks(INSERT_CHUNK) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO decisions (trace_id, decision, policy, trigger, span_count, decided_at_ms, \
                 error, duration_us, processor) ",
            );
            qb.push_values(chunk, |mut b, d| {
                b.push_bind(d.trace_id.clone())
                    .push_bind(enum_text(&d.decision))
                    .push_bind(d.policy.clone())
                    .push_bind(enum_text(&d.trigger))
                    .push_bind(d.span_count as i64)
                    .push_bind(d.decided_at_ms)
                    .push_bind(d.error)
                    .push_bind(d.duration_us.min(i64::MAX as u64) as i64)
                    .push_bind(d.processor.clone());
            });
            qb.build().execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM decisions WHERE id <= (SELECT MAX(id) FROM decisions) - $1")
            .bind(self.cfg.max_decisions as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Most recent persisted decisions, newest first; optionally only those of one trace.
    pub async fn decisions(
        &self,
        trace_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SamplingDecision>, StoreError> {
        let rows = sqlx::query(
            "SELECT trace_id, decision, policy, trigger, span_count, decided_at_ms, error, duration_us, \
             processor FROM decisions \
             WHERE ($1 IS NULL OR trace_id = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(trace_id)
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(|r| SamplingDecision {
                trace_id: r.get(0),
                decision: text_enum(r.get::<String, _>(1).as_str()).unwrap_or(Decision::NotSampled),
                policy: r.get(2),
                trigger: text_enum(r.get::<String, _>(3).as_str())
                    .unwrap_or(DecisionTrigger::DecisionWait),
                span_count: r.get::<i64, _>(4) as u64,
                decided_at_ms: r.get(5),
                // NULL in decisions from before schema version 3.
                error: r.get::<Option<bool>, _>(6).unwrap_or(false),
                duration_us: r.get::<Option<i64>, _>(7).unwrap_or(0).max(0) as u64,
                processor: r.get(8),
            })
            .collect())
    }

    /// Decision counts per (processor, deciding policy, bucket) for decisions made in
    /// `[start_ms, start_ms + buckets × step_ms)`; bucket `i` starts at `start_ms + i × step_ms`.
    /// A trace is slow when its duration is at least the processor's entry in `slow_us`, else
    /// `default_slow_us`. One aggregate over the `decided_at_ms` index.
    pub async fn decision_timeline(
        &self,
        start_ms: i64,
        step_ms: i64,
        buckets: i64,
        slow_us: &[(String, u64)],
        default_slow_us: u64,
    ) -> Result<Vec<TimelineRow>, StoreError> {
        let step_ms = step_ms.max(1);
        let end_ms = start_ms.saturating_add(step_ms.saturating_mul(buckets.max(0)));
        let clamp = |v: u64| v.min(i64::MAX as u64) as i64;
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("");
        if !slow_us.is_empty() {
            qb.push("WITH th(processor, slow_us) AS (VALUES ");
            let mut sep = qb.separated(", ");
            for (p, us) in slow_us {
                sep.push("(")
                    .push_bind_unseparated(p.clone())
                    .push_unseparated(", ")
                    .push_bind_unseparated(clamp(*us))
                    .push_unseparated(")");
            }
            qb.push(") ");
        }
        // The processor's threshold, else the default.
        let slow = |qb: &mut QueryBuilder<Sqlite>| {
            if slow_us.is_empty() {
                qb.push_bind(clamp(default_slow_us));
            } else {
                qb.push("COALESCE(th.slow_us, ")
                    .push_bind(clamp(default_slow_us))
                    .push(")");
            }
        };
        qb.push("SELECT d.processor, d.policy, (d.decided_at_ms - ")
            .push_bind(start_ms)
            .push(") / ")
            .push_bind(step_ms)
            .push(
                " AS b, \
                 SUM(d.decision = 'sampled'), SUM(d.decision <> 'sampled'), \
                 COALESCE(SUM(d.error), 0), COALESCE(SUM(d.error AND d.decision = 'sampled'), 0), \
                 COALESCE(SUM(d.duration_us >= ",
            );
        slow(&mut qb);
        qb.push("), 0), COALESCE(SUM(d.duration_us >= ");
        slow(&mut qb);
        qb.push(" AND d.decision = 'sampled'), 0) FROM decisions d ");
        if !slow_us.is_empty() {
            qb.push("LEFT JOIN th ON th.processor = d.processor ");
        }
        qb.push("WHERE d.decided_at_ms >= ")
            .push_bind(start_ms)
            .push(" AND d.decided_at_ms < ")
            .push_bind(end_ms)
            .push(" GROUP BY d.processor, d.policy, b ORDER BY d.processor, d.policy, b");
        let rows = qb.build().fetch_all(&self.read).await?;
        let n = |r: &sqlx::sqlite::SqliteRow, i: usize| r.get::<i64, _>(i).max(0) as u64;
        Ok(rows
            .iter()
            .map(|r| TimelineRow {
                processor: r.get(0),
                policy: r.get(1),
                bucket: r.get(2),
                counts: DecisionCounts {
                    kept: n(r, 3),
                    dropped: n(r, 4),
                    error_traces: n(r, 5),
                    error_kept: n(r, 6),
                    slow_traces: n(r, 7),
                    slow_kept: n(r, 8),
                },
            })
            .collect())
    }

    /// Stores a sampling-lab result (as received); keeps the latest few (`LAB_RESULTS_KEPT`).
    pub async fn insert_lab_result(&self, r: &SamplingLabResult) -> Result<(), StoreError> {
        let body = serde_json::to_string(r)?;
        let mut tx = self.write.begin().await?;
        sqlx::query("INSERT INTO lab_results (received_at_ms, body) VALUES ($1, $2)")
            .bind((now_us() / 1000) as i64)
            .bind(body)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM lab_results WHERE id <= (SELECT MAX(id) FROM lab_results) - $1")
            .bind(LAB_RESULTS_KEPT)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The sampling-lab result stored last, if any.
    pub async fn latest_lab_result(&self) -> Result<Option<SamplingLabResult>, StoreError> {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM lab_results ORDER BY id DESC LIMIT 1")
                .fetch_optional(&self.read)
                .await?;
        match body {
            None => Ok(None),
            Some(b) => Ok(Some(serde_json::from_str(&b)?)),
        }
    }

    async fn process(&self, resource_id: i64) -> Result<Arc<Process>, StoreError> {
        if let Some(p) = lock(&self.resources).by_id.get(&resource_id) {
            return Ok(p.clone());
        }
        let row = sqlx::query("SELECT service, tags FROM resources WHERE id = $1")
            .bind(resource_id)
            .fetch_optional(&self.read)
            .await?;
        let p = Arc::new(match row {
            Some(r) => Process {
                service_name: r.get(0),
                tags: serde_json::from_str(r.get::<&str, _>(1)).unwrap_or_default(),
            },
            None => Process {
                service_name: UNKNOWN_SERVICE.into(),
                tags: Vec::new(),
            },
        });
        lock(&self.resources).by_id.insert(resource_id, p.clone());
        Ok(p)
    }

    /// Turns span rows (body, scope name, scope version, resource id) into Jaeger spans plus the
    /// processes they reference (`p1`, `p2`, … in order of first use).
    async fn jaeger_spans(
        &self,
        rows: &[sqlx::sqlite::SqliteRow],
    ) -> Result<(Vec<Span>, BTreeMap<String, Process>), StoreError> {
        let mut pids: HashMap<i64, String> = HashMap::new();
        let mut processes = BTreeMap::new();
        let mut spans = Vec::with_capacity(rows.len());
        for r in rows {
            let body: &[u8] = r.get(0);
            let otlp = OtlpSpan::decode(body)?;
            let rid: i64 = r.get(3);
            let pid = match pids.get(&rid) {
                Some(p) => p.clone(),
                None => {
                    let pid = format!("p{}", pids.len() + 1);
                    processes.insert(pid.clone(), (*self.process(rid).await?).clone());
                    pids.insert(rid, pid.clone());
                    pid
                }
            };
            spans.push(convert::jaeger_span(&otlp, r.get(1), r.get(2), pid));
        }
        Ok((spans, processes))
    }

    /// A whole trace, spans ordered by start time; `None` when unknown.
    pub async fn get_trace(&self, id: &TraceId) -> Result<Option<Trace>, StoreError> {
        let rows = sqlx::query(
            "SELECT body, scope_name, scope_version, resource_id FROM spans WHERE trace_id = $1 \
             ORDER BY start_us, duration_us, id",
        )
        .bind(id.to_vec())
        .fetch_all(&self.read)
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let (spans, processes) = self.jaeger_spans(&rows).await?;
        Ok(Some(Trace {
            trace_id: hex_id(id),
            spans,
            processes,
            warnings: Vec::new(),
        }))
    }

    /// A window of a trace's spans ordered by (start time, duration, arrival), with the total; `None` when
    /// the trace is unknown.
    pub async fn get_span_window(
        &self,
        id: &TraceId,
        offset: u64,
        limit: u64,
    ) -> Result<Option<SpanWindow>, StoreError> {
        let (total, lo, hi): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(start_us), MAX(start_us + duration_us) FROM spans WHERE trace_id = $1",
        )
        .bind(id.to_vec())
        .fetch_one(&self.read)
        .await?;
        if total == 0 {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT body, scope_name, scope_version, resource_id FROM spans WHERE trace_id = $1 \
             ORDER BY start_us, duration_us, id LIMIT $2 OFFSET $3",
        )
        .bind(id.to_vec())
        .bind(limit as i64)
        .bind(offset as i64)
        .fetch_all(&self.read)
        .await?;
        let (spans, processes) = self.jaeger_spans(&rows).await?;
        Ok(Some(SpanWindow {
            trace_id: hex_id(id),
            total: total as u64,
            offset,
            limit,
            spans,
            processes,
            trace_start_time: lo.unwrap_or(0) as u64,
            trace_end_time: hi.unwrap_or(0) as u64,
        }))
    }

    /// The compact headers of every span of a trace (no bodies), in storage order; empty when the
    /// trace is unknown. What the query API builds a trace's tree from (see `query::tree`).
    pub async fn span_headers(&self, id: &TraceId) -> Result<Vec<SpanHeader>, StoreError> {
        let mut rows = sqlx::query(
            "SELECT id, span_id, parent_id, service, name, kind, start_us, duration_us, status \
             FROM spans WHERE trace_id = $1",
        )
        .bind(id.to_vec())
        .fetch(&self.read);
        let mut out = Vec::new();
        while let Some(r) = rows.try_next().await? {
            out.push(SpanHeader {
                row: r.get(0),
                span_id: span_key(r.get::<&[u8], _>(1)),
                parent_id: r.get::<Option<&[u8]>, _>(2).map(span_key),
                service: r.get(3),
                name: r.get(4),
                kind: r.get(5),
                start_us: r.get::<i64, _>(6).max(0) as u64,
                duration_us: r.get::<i64, _>(7).max(0) as u64,
                error: r.get::<i32, _>(8) == 2,
            });
        }
        Ok(out)
    }

    /// Spans of a trace, its span count and time range (one pass over the `(trace_id, …)` index):
    /// `(0, 0, 0)` when unknown.
    pub async fn trace_extent(&self, id: &TraceId) -> Result<(u64, u64, u64), StoreError> {
        let (total, lo, hi): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(start_us), MAX(start_us + duration_us) FROM spans WHERE trace_id = $1",
        )
        .bind(id.to_vec())
        .fetch_one(&self.read)
        .await?;
        Ok((
            total as u64,
            lo.unwrap_or(0).max(0) as u64,
            hi.unwrap_or(0).max(0) as u64,
        ))
    }

    /// Jaeger spans by their [`SpanHeader::row`], in the order given (rows no longer stored are
    /// left out), with the processes they reference (`p1`, … in order of first use).
    pub async fn spans_by_row(
        &self,
        rows: &[i64],
    ) -> Result<(Vec<(i64, Span)>, BTreeMap<String, Process>), StoreError> {
        let mut found: Vec<sqlx::sqlite::SqliteRow> = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(ID_CHUNK) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT body, scope_name, scope_version, resource_id, id FROM spans WHERE id IN (",
            );
            let mut sep = qb.separated(", ");
            for r in chunk {
                sep.push_bind(*r);
            }
            qb.push(")");
            found.extend(qb.build().fetch_all(&self.read).await?);
        }
        let pos: HashMap<i64, usize> = rows.iter().enumerate().map(|(i, r)| (*r, i)).collect();
        found.sort_by_key(|r| pos.get(&r.get::<i64, _>(4)).copied().unwrap_or(usize::MAX));
        let ids: Vec<i64> = found.iter().map(|r| r.get(4)).collect();
        let (spans, processes) = self.jaeger_spans(&found).await?;
        Ok((ids.into_iter().zip(spans).collect(), processes))
    }

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
        let mut driving: Option<usize> = None;
        let mut fewest = SELECTIVE_TAG_TRACES + 1;
        for (i, w) in wants.iter().enumerate() {
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
            qb.push(" AND s.trace_id IN (SELECT trace_id FROM attrs WHERE key = ")
                .push_bind(w.key.clone())
                .push(" AND value IN ");
            push_text_list(&mut qb, w.index_texts());
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

    /// A summary of one trace (no spans); `None` when unknown.
    pub async fn trace_summary(&self, id: &TraceId) -> Result<Option<TraceSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT service, COUNT(*), SUM(status = 2), MIN(start_us), MAX(start_us + duration_us) \
             FROM spans WHERE trace_id = $1 GROUP BY service ORDER BY MIN(start_us)",
        )
        .bind(id.to_vec())
        .fetch_all(&self.read)
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let root = sqlx::query(
            "SELECT service, name FROM spans WHERE trace_id = $1 ORDER BY parent_id IS NOT NULL, start_us LIMIT 1",
        )
        .bind(id.to_vec())
        .fetch_optional(&self.read)
        .await?;
        let (mut lo, mut hi, mut spans, mut errors) = (i64::MAX, 0i64, 0u64, 0u64);
        let services = rows
            .iter()
            .map(|r| {
                let n = r.get::<i64, _>(1) as u64;
                let e = r.get::<i64, _>(2) as u64;
                lo = lo.min(r.get(3));
                hi = hi.max(r.get(4));
                spans += n;
                errors += e;
                ServiceSpanCount {
                    service: r.get(0),
                    span_count: n,
                    error_count: e,
                }
            })
            .collect();
        let (root_service, root_operation) =
            root.map_or((String::new(), String::new()), |r| (r.get(0), r.get(1)));
        Ok(Some(TraceSummary {
            trace_id: hex_id(id),
            root_service,
            root_operation,
            start_time: lo as u64,
            duration: (hi - lo).max(0) as u64,
            span_count: spans,
            error_count: errors,
            services,
        }))
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

    /// Facts about each of `ids` this store holds (span count, any ERROR span, duration, services),
    /// in the order of `ids`, and the ids it holds no span of. Duplicate ids are answered once.
    /// One grouped query per [`ID_CHUNK`] ids over the `(trace_id, …)` index; rows are one per
    /// (trace, service), so the answer is bounded by the ids asked, not by the traces' sizes.
    pub async fn trace_facts(
        &self,
        ids: &[TraceId],
    ) -> Result<(Vec<TraceFacts>, Vec<TraceId>), StoreError> {
        let mut unique: Vec<TraceId> = Vec::with_capacity(ids.len());
        let mut seen: HashSet<TraceId> = HashSet::with_capacity(ids.len());
        for id in ids {
            if seen.insert(*id) {
                unique.push(*id);
            }
        }
        #[derive(Default)]
        struct Acc {
            spans: u64,
            error: bool,
            start: i64,
            end: i64,
            services: Vec<String>,
        }
        let mut found: HashMap<TraceId, Acc> = HashMap::new();
        for chunk in unique.chunks(ID_CHUNK) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT trace_id, service, COUNT(*), MAX(status = 2), MIN(start_us), \
                 MAX(start_us + duration_us) FROM spans WHERE trace_id IN ",
            );
            push_id_list(&mut qb, chunk.iter().map(|t| t.to_vec()));
            qb.push(" GROUP BY trace_id, service");
            for r in qb.build().fetch_all(&self.read).await? {
                let t = trace_id_of(r.get::<&[u8], _>(0));
                let a = found.entry(t).or_insert_with(|| Acc {
                    start: i64::MAX,
                    end: i64::MIN,
                    ..Default::default()
                });
                a.services.push(r.get(1));
                a.spans += r.get::<i64, _>(2) as u64;
                a.error |= r.get::<i64, _>(3) != 0;
                a.start = a.start.min(r.get(4));
                a.end = a.end.max(r.get(5));
            }
        }
        let mut facts = Vec::with_capacity(found.len());
        let mut missing = Vec::new();
        for id in unique {
            match found.remove(&id) {
                Some(mut a) => {
                    a.services.sort();
                    facts.push(TraceFacts {
                        trace_id: hex_id(&id),
                        spans: a.spans,
                        error: a.error,
                        duration_us: (a.end - a.start).max(0) as u64,
                        services: a.services,
                    });
                }
                None => missing.push(id),
            }
        }
        Ok((facts, missing))
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

    /// Calls between services by a join over the stored spans, what `/api/dependencies` answered
    /// before the service map's aggregate (kept to check and time the aggregate against): a
    /// SERVER or CONSUMER span whose parent belongs to another service counts one call parent
    /// service → child service. Over spans starting in [`end_us - lookback_us`, `end_us`]; one
    /// index probe per entry span of the window.
    pub async fn dependencies_scan(
        &self,
        end_us: u64,
        lookback_us: u64,
    ) -> Result<Vec<DependencyLink>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT p.service, c.service, COUNT(*) FROM spans c CROSS JOIN spans p INDEXED BY spans_span_trace \
               ON p.span_id = c.parent_id AND p.trace_id = c.trace_id \
             WHERE c.start_us >= $1 AND c.start_us <= $2 AND c.kind IN (2, 5) AND c.parent_id IS NOT NULL \
               AND p.service <> c.service \
             GROUP BY p.service, c.service ORDER BY p.service, c.service",
        )
        .bind(end_us.saturating_sub(lookback_us) as i64)
        .bind(end_us as i64)
        .fetch_all(&self.read)
        .await?;
        Ok(service_map::links(rows))
    }

    /// Log records of a trace (or of one span of it), oldest first.
    pub async fn logs(
        &self,
        trace_id: &TraceId,
        span_id: Option<&[u8; 8]>,
    ) -> Result<Vec<LogRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT l.time_us, l.severity_number, l.severity_text, l.body, l.trace_id, l.span_id, l.service, \
                    l.attributes, l.resource_id \
             FROM logs l WHERE l.trace_id = $1 AND ($2 IS NULL OR l.span_id = $2) ORDER BY l.time_us, l.id",
        )
        .bind(trace_id.to_vec())
        .bind(span_id.map(|s| s.to_vec()))
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let resource = self.process(r.get(8)).await?;
            out.push(LogRecord {
                timestamp: r.get::<i64, _>(0) as u64,
                severity_number: r.get(1),
                severity_text: r.get(2),
                body: r.get(3),
                trace_id: r
                    .get::<Option<Vec<u8>>, _>(4)
                    .map(|b| hex_id(&b))
                    .unwrap_or_default(),
                span_id: r
                    .get::<Option<Vec<u8>>, _>(5)
                    .map(|b| hex_id(&b))
                    .unwrap_or_default(),
                service_name: r.get(6),
                attributes: serde_json::from_str(r.get::<&str, _>(7)).unwrap_or_default(),
                resource: resource.tags.clone(),
            });
        }
        Ok(out)
    }

    /// Removes whole traces, oldest first, until at most `target` spans remain.
    async fn prune_to_span_count(&self, target: u64) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        // Each round removes the traces of the oldest `excess` spans (at least that many spans).
        for _ in 0..16 {
            let count = self.spans.load(Ordering::Relaxed);
            if count <= target {
                break;
            }
            let excess = (count - target).max(count / 100);
            let ids: Vec<Vec<u8>> = sqlx::query_scalar(
                "SELECT DISTINCT trace_id FROM (SELECT trace_id FROM spans ORDER BY start_us LIMIT $1)",
            )
            .bind(excess as i64)
            .fetch_all(&self.write)
            .await?;
            if ids.is_empty() {
                break;
            }
            let r = self.delete_traces(&ids).await?;
            report.traces += r.traces;
            report.spans += r.spans;
        }
        if report.spans > 0 {
            self.map_prune(i64::MIN, now_us() as i64).await?;
        }
        Ok(report)
    }

    async fn delete_traces(&self, ids: &[Vec<u8>]) -> Result<PruneReport, StoreError> {
        let mut tx = self.write.begin().await?;
        let mut spans = 0;
        // Counted inside the transaction: a concurrent prune may have removed some already.
        let traces = Self::count_stored_traces(&mut tx, ids).await?;
        for chunk in ids.chunks(ID_CHUNK) {
            for table in ["attrs", "scope_attrs", "spans"] {
                let mut qb: QueryBuilder<Sqlite> =
                    QueryBuilder::new(format!("DELETE FROM {table} WHERE trace_id IN "));
                push_id_list(&mut qb, chunk.iter().cloned());
                let n = qb.build().execute(&mut *tx).await?.rows_affected();
                if table == "spans" {
                    spans += n;
                }
            }
        }
        tx.commit().await?;
        self.span_generation.fetch_add(1, Ordering::Release);
        self.spans.fetch_sub(
            spans.min(self.spans.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        self.traces.fetch_sub(
            traces.min(self.traces.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        Ok(PruneReport {
            traces,
            spans,
            ..Default::default()
        })
    }

    /// Enforces every bound: age (retention), span count, database size, log count. Called
    /// periodically by the exporter; also safe to call any time.
    pub async fn prune(&self) -> Result<PruneReport, StoreError> {
        self.prune_at(now_us()).await
    }

    /// [`prune`](Self::prune) as if the time were `now_us` (tests).
    pub async fn prune_at(&self, now_us: u64) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        let cutoff = now_us.saturating_sub(self.cfg.retention.as_micros() as u64) as i64;
        for _ in 0..1000 {
            let ids: Vec<Vec<u8>> = sqlx::query_scalar(
                "SELECT DISTINCT trace_id FROM spans WHERE start_us < $1 LIMIT 2000",
            )
            .bind(cutoff)
            .fetch_all(&self.write)
            .await?;
            if ids.is_empty() {
                break;
            }
            let r = self.delete_traces(&ids).await?;
            report.traces += r.traces;
            report.spans += r.spans;
        }
        let r = self.prune_to_span_count(self.cfg.max_spans).await?;
        report.traces += r.traces;
        report.spans += r.spans;
        // Size bound: shrink the span count in proportion to the excess (plus 10% headroom), and
        // repeat while still over (indexes and free pages make bytes per span uneven).
        let max_bytes = self.cfg.max_size_mib * 1024 * 1024;
        for _ in 0..10 {
            let st = self.stats().await?;
            if st.used_bytes <= max_bytes || st.spans == 0 {
                break;
            }
            let target = (st.spans as f64 * (max_bytes as f64 / st.used_bytes as f64) * 0.9) as u64;
            let r = self.prune_to_span_count(target.min(st.spans - 1)).await?;
            report.traces += r.traces;
            report.spans += r.spans;
        }
        let logs = sqlx::query("DELETE FROM logs WHERE time_us < $1")
            .bind(cutoff)
            .execute(&self.write)
            .await?;
        report.logs = logs.rows_affected();
        self.logs.fetch_sub(
            report.logs.min(self.logs.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        let d = sqlx::query("DELETE FROM decisions WHERE decided_at_ms < $1")
            .bind(cutoff / 1000)
            .execute(&self.write)
            .await?;
        report.decisions = d.rows_affected();
        if report.spans > 0 {
            // Operations whose spans are all gone leave the service/operation lists.
            sqlx::query(
                "DELETE FROM operations WHERE NOT EXISTS (SELECT 1 FROM spans s \
                 WHERE s.service = operations.service AND s.name = operations.name)",
            )
            .execute(&self.write)
            .await?;
            let ops: Vec<(String, String, i32)> =
                sqlx::query_as("SELECT service, name, kind FROM operations")
                    .fetch_all(&self.write)
                    .await?;
            *lock(&self.operations) = ops.into_iter().collect();
        }
        self.map_prune(cutoff, now_us as i64).await?;
        // Planner statistics for the search queries; cheap with analysis_limit.
        sqlx::query("PRAGMA optimize").execute(&self.write).await?;
        Ok(report)
    }

    /// Counts and sizes.
    pub async fn stats(&self) -> Result<StoreStats, StoreError> {
        let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&self.write)
            .await?;
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&self.write)
            .await?;
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(&self.write)
            .await?;
        Ok(StoreStats {
            traces: self.trace_count(),
            spans: self.span_count(),
            logs: self.logs.load(Ordering::Relaxed),
            used_bytes: ((pages - free).max(0) * page_size) as u64,
            file_bytes: (pages * page_size) as u64,
        })
    }
}

/// `Decision::Sampled` → `"sampled"` (the API's snake_case spelling).
fn enum_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| j.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn text_enum<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}
