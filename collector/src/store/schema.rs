//! The store's SQLite schema. Spans keep their OTLP protobuf encoding (`body`) next to the columns
//! searches filter on; `attrs` is the tag index (one row per distinct key/value per trace, from
//! span, event, link, resource and scope attributes); `scope_attrs` keeps scope attributes per
//! (trace, scope);
//! `operations` makes the service and operation lists cheap; `decisions` is the tail samplers'
//! decision history (the sampling dashboard's timeline), `lab_results` the latest sampling-lab
//! results; `service_map`, `map_pending` and `map_state` hold the service map's aggregate.

/// Bumped when the schema changes; a file of an older version listed in [`MIGRATIONS`] is
/// upgraded when opened, any other version is refused with a clear message.
/// Version 2: one row per (trace id, span id), enforced by the unique `spans_span_trace`.
/// Version 3: decisions record the trace's `error` and `duration_us` and their `processor`.
pub const SCHEMA_VERSION: i64 = 3;

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
    "CREATE INDEX IF NOT EXISTS spans_service_start ON spans(service, start_us)",
    "CREATE INDEX IF NOT EXISTS spans_service_name_start ON spans(service, name, start_us)",
    "CREATE INDEX IF NOT EXISTS spans_start ON spans(start_us)",
    // One row per (trace id, span id): a retried export never duplicates a span (inserts are
    // `ON CONFLICT DO NOTHING`). Also the parent lookups of /api/dependencies (span ids are
    // random: one probe per child). Replaces version 1's non-unique `spans_span_id`.
    "DROP INDEX IF EXISTS spans_span_id",
    "CREATE UNIQUE INDEX IF NOT EXISTS spans_span_trace ON spans(span_id, trace_id)",
    "CREATE TABLE IF NOT EXISTS attrs (
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        trace_id BLOB NOT NULL,
        PRIMARY KEY (key, value, trace_id)
    ) WITHOUT ROWID",
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
