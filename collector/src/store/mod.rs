//! The embedded trace store behind the `tracelab` exporter and the query API: SQLite (through the
//! workspace's sqlx) in WAL mode in a data directory. Spans, OTLP log records and sampling decisions
//! are written in batched transactions; reads serve the Jaeger API (whole traces, search, services,
//! operations, dependencies) and tracelab's `/api/v1` (windowed span reads, summaries, logs, facts
//! about many traces at once for comparing stores).
//! Bounded by span count, database size and age; pruning removes whole traces, oldest first.
//! Why SQLite: see `collector/README.md`.
//!
//! This file holds the public types, the [`TraceStore`] handle and its counters; the rest is split
//! by concern: `schema` (DDL, migrations, opening a file), `write` (span and log inserts),
//! `search` (the Jaeger search, services, operations), `read` (whole traces, windows, headers for
//! the tree, summaries, facts, logs), `prune` (retention and bounds), `lab` (sampling decisions and
//! sampling-lab results), `service_map` (the map's aggregate), `convert` (OTLP → Jaeger shapes).

mod convert;
mod lab;
#[cfg(test)]
mod map_tests;
mod prune;
mod read;
mod schema;
mod search;
mod service_map;
#[cfg(test)]
mod tests;
mod write;

pub use convert::{UNKNOWN_SERVICE, kind_from_name, kind_name};
pub use service_map::{bucket_of, bucket_value, percentile};

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use collector_api::jaeger::Process;
use collector_api::sampling::DecisionCounts;
use serde::Deserialize;
use sqlx::sqlite::SqlitePool;
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

impl TraceStore {
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

    /// Closes the pools (checkpointing the WAL).
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
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
