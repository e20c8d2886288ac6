//! The store's SQLite schema. Spans keep their OTLP protobuf encoding (`body`) next to the columns
//! searches filter on; `attrs` is the tag index (one row per distinct key/value per trace, from
//! span, event, link and scope attributes); `resource_attrs` indexes resource attributes per
//! resource; `scope_attrs` keeps scope attributes per
//! (trace, scope);
//! `operations` makes the service and operation lists cheap; `decisions` is the tail samplers'
//! decision history (the sampling dashboard's timeline), `lab_results` the latest sampling-lab
//! results; `service_map`, `map_pending` and `map_state` hold the service map's aggregate.
//! Opening a file (pragmas, migrations, the in-memory counters) is here too.

use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{MAX_SEARCH_SCAN, ResourceCache, StoreConfig, StoreError, TraceStore};

/// Bumped when the schema changes; a file of an older version listed in [`MIGRATIONS`] is
/// upgraded when opened, any other version is refused with a clear message.
/// Version 2: one row per (trace id, span id), enforced by the unique `spans_span_trace`.
/// Version 3: decisions record the trace's `error` and `duration_us` and their `processor`.
/// Version 4: resource attributes are indexed once per resource in `resource_attrs` instead of
/// once per trace in `attrs` (the biggest share of the tag index's rows).
pub const SCHEMA_VERSION: i64 = 4;

/// Statements that bring a file of the given version up to the next one, run (in one
/// transaction) before [`DDL`]. 1 → 2 removes duplicate spans (keeping the first stored) so the
/// unique index in [`DDL`] can be built. 2 → 3 adds the decisions' new columns: older decisions
/// get `error` and `duration_us` NULL (unknown: they count as kept or dropped, never among the
/// error or slow traces) and an empty `processor`.
pub const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "DELETE FROM spans WHERE id NOT IN (SELECT MIN(id) FROM spans GROUP BY trace_id, span_id)",
        ],
    ),
    (
        2,
        &[
            "ALTER TABLE decisions ADD COLUMN error INTEGER DEFAULT NULL",
            "ALTER TABLE decisions ADD COLUMN duration_us INTEGER DEFAULT NULL",
            "ALTER TABLE decisions ADD COLUMN processor TEXT NOT NULL DEFAULT ''",
        ],
    ),
    // 3 → 4: `resource_attrs` is created by [`DDL`] and filled as each resource is first used
    // (`write::resource_id`). Traces stored before keep their per-trace resource rows in `attrs`,
    // so searches still find them; the version bump keeps a version-3 collector, which would
    // miss the resource tags of newer traces, off the file.
    (3, &[]),
];

pub const DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS resources (
        id INTEGER PRIMARY KEY,
        fingerprint INTEGER NOT NULL UNIQUE,
        service TEXT NOT NULL,
        tags TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS spans (
        id INTEGER PRIMARY KEY,
        trace_id BLOB NOT NULL,
        span_id BLOB NOT NULL,
        parent_id BLOB,
        service TEXT NOT NULL,
        name TEXT NOT NULL,
        kind INTEGER NOT NULL,
        start_us INTEGER NOT NULL,
        duration_us INTEGER NOT NULL,
        status INTEGER NOT NULL,
        resource_id INTEGER NOT NULL,
        scope_name TEXT NOT NULL,
        scope_version TEXT NOT NULL,
        body BLOB NOT NULL
    )",
    // Covers windowed reads: order (start, duration, rowid), count, and the trace's time range.
    "DROP INDEX IF EXISTS spans_trace",
    "CREATE INDEX IF NOT EXISTS spans_trace_window ON spans(trace_id, start_us, duration_us)",
    // Every index below is what a query's plan uses (EXPLAIN QUERY PLAN, Dec 2026): searches by
    // service newest first (service_start), by service and operation (service_name_start), with
    // no service (start: also the prune's oldest-first walk); dropping one turns its search into
    // a filtered walk of another index, unbounded for a rare service or operation.
    "CREATE INDEX IF NOT EXISTS spans_service_start ON spans(service, start_us)",
    "CREATE INDEX IF NOT EXISTS spans_service_name_start ON spans(service, name, start_us)",
    "CREATE INDEX IF NOT EXISTS spans_start ON spans(start_us)",
    // One row per (trace id, span id): a retried export never duplicates a span (the writer
    // probes it for spans of stored traces; inserts keep `ON CONFLICT DO NOTHING`). Also the
    // service map's parent lookups and those of the dependencies join (span ids are random: one
    // probe per child). Replaces version 1's non-unique `spans_span_id`.
    "DROP INDEX IF EXISTS spans_span_id",
    "CREATE UNIQUE INDEX IF NOT EXISTS spans_span_trace ON spans(span_id, trace_id)",
    "CREATE TABLE IF NOT EXISTS attrs (
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        trace_id BLOB NOT NULL,
        PRIMARY KEY (key, value, trace_id)
    ) WITHOUT ROWID",
    // Removing a trace's tag rows when the trace is pruned.
    "CREATE INDEX IF NOT EXISTS attrs_trace ON attrs(trace_id)",
    // Instrumentation-scope attributes per (trace, scope), so a tag search can tell which spans
    // of a trace carry them (the span rows keep the scope's name and version). Added without a
    // version bump: an older file simply gets the empty table.
    "CREATE TABLE IF NOT EXISTS scope_attrs (
        trace_id BLOB NOT NULL,
        scope_name TEXT NOT NULL,
        scope_version TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (trace_id, scope_name, scope_version, key, value)
    ) WITHOUT ROWID",
    // Resource attributes (as `attrs` texts) per resource: one row per attribute of each
    // distinct resource, where `attrs` would hold one per trace of it. The tag search filters
    // spans by `resource_id` through it.
    "CREATE TABLE IF NOT EXISTS resource_attrs (
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        resource_id INTEGER NOT NULL,
        PRIMARY KEY (key, value, resource_id)
    ) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS operations (
        service TEXT NOT NULL,
        name TEXT NOT NULL,
        kind INTEGER NOT NULL,
        PRIMARY KEY (service, name, kind)
    ) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS logs (
        id INTEGER PRIMARY KEY,
        trace_id BLOB,
        span_id BLOB,
        time_us INTEGER NOT NULL,
        severity_number INTEGER NOT NULL,
        severity_text TEXT NOT NULL,
        service TEXT NOT NULL,
        body TEXT NOT NULL,
        attributes TEXT NOT NULL,
        resource_id INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS logs_trace ON logs(trace_id, span_id, time_us)",
    "CREATE INDEX IF NOT EXISTS logs_time ON logs(time_us)",
    "CREATE TABLE IF NOT EXISTS decisions (
        id INTEGER PRIMARY KEY,
        trace_id TEXT NOT NULL,
        decision TEXT NOT NULL,
        policy TEXT,
        trigger TEXT NOT NULL,
        span_count INTEGER NOT NULL,
        decided_at_ms INTEGER NOT NULL,
        error INTEGER DEFAULT NULL,
        duration_us INTEGER DEFAULT NULL,
        processor TEXT NOT NULL DEFAULT ''
    )",
    "CREATE INDEX IF NOT EXISTS decisions_trace ON decisions(trace_id)",
    // The timeline's range scan (and the retention prune).
    "CREATE INDEX IF NOT EXISTS decisions_time ON decisions(decided_at_ms)",
    // The latest sampling-lab results (the JSON `PUT /api/v1/sampling/lab` received), newest
    // last; a few are kept. Added without a version bump: older files get the empty table.
    "CREATE TABLE IF NOT EXISTS lab_results (
        id INTEGER PRIMARY KEY,
        received_at_ms INTEGER NOT NULL,
        body TEXT NOT NULL
    )",
    // The service map's aggregate (see `service_map.rs`): spans and ERROR spans per minute, kind
    // (entry, http, rpc, publish, consume, handoff, handoff_direct), source, target and latency
    // bucket `le`. Added without a version bump: a file without it is backfilled when opened.
    "CREATE TABLE IF NOT EXISTS service_map (
        minute INTEGER NOT NULL,
        kind TEXT NOT NULL,
        source TEXT NOT NULL,
        target TEXT NOT NULL,
        le INTEGER NOT NULL,
        calls INTEGER NOT NULL,
        errors INTEGER NOT NULL,
        PRIMARY KEY (minute, kind, source, target, le)
    ) WITHOUT ROWID",
    // Service-map children whose parent span (trace_id, parent_id) has not arrived yet.
    "CREATE TABLE IF NOT EXISTS map_pending (
        trace_id BLOB NOT NULL,
        parent_id BLOB NOT NULL,
        span_id BLOB NOT NULL,
        service TEXT NOT NULL,
        kind INTEGER NOT NULL,
        start_us INTEGER NOT NULL,
        duration_us INTEGER NOT NULL,
        error INTEGER NOT NULL,
        rpc INTEGER NOT NULL,
        topic TEXT,
        PRIMARY KEY (trace_id, parent_id, span_id)
    ) WITHOUT ROWID",
    // `backfilled`: the service map was built from this file's spans (or the file started empty).
    "CREATE TABLE IF NOT EXISTS map_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
];

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
            // Checkpoint every 8000 WAL pages (~32 MiB at 4 KiB) rather than SQLite's 1000: the
            // hot index pages a run of batches rewrites are copied into the file (and fsynced)
            // once per checkpoint, not once per ~4 MiB written. Below `journal_size_limit`.
            .pragma("wal_autocheckpoint", "8000")
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
        if version != 0 && version != SCHEMA_VERSION {
            let mut tx = write.begin().await?;
            while let Some((_, steps)) = MIGRATIONS.iter().find(|(v, _)| *v == version) {
                for step in *steps {
                    sqlx::query(*step).execute(&mut *tx).await?;
                }
                version += 1;
            }
            if version != SCHEMA_VERSION {
                return Err(StoreError::Schema(format!(
                    "{} has schema version {version}, this collector reads version {}; move the directory away",
                    path.display(),
                    SCHEMA_VERSION
                )));
            }
            tx.commit().await?;
            tracing::info!(path = %path.display(), version, "trace store: schema upgraded");
        }
        for ddl in DDL {
            sqlx::query(*ddl).execute(&write).await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "PRAGMA user_version = {}",
            SCHEMA_VERSION
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
}
