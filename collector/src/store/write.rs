//! The write path: span batches and log records, each batch in one transaction of the single
//! writer connection. What keeps it cheap (measured by `benches/store.rs`, see
//! docs/benchmarks.md):
//! - a batch is converted first ([`Prepared`]: protobuf bodies encoded, tag-index rows and
//!   service-map children computed) before the writer lock and the transaction are taken, so the
//!   writer only binds and steps;
//! - one multi-row `INSERT … VALUES (…),(…)` per table and chunk, the values moved into sqlx's
//!   arguments (no copies; repeated texts are shared `Arc<str>`), so sqlx's SQLite worker thread
//!   is crossed a handful of times per batch, not once per row;
//! - no `RETURNING`: duplicates (a retried export) can only be spans of traces stored before, so
//!   only those are probed (one join per chunk with the unique `(span_id, trace_id)` index) and
//!   the rest is known new; duplicates within the batch are dropped while converting;
//! - resource attributes go to `resource_attrs` once per resource rather than to `attrs` once per
//!   trace (they were most of the tag index's rows);
//! - the service map's parent lookups are one join per chunk too (`service_map::map_insert`).
//!
//! The span indexes stay: each serves a query (see `schema.rs`), checked with EXPLAIN QUERY PLAN.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use collector_api::jaeger::{KeyValue, Process};
use opentelemetry_proto::tonic::common::v1::KeyValue as OtlpKeyValue;
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{
    ID_CHUNK, INSERT_CHUNK, MAX_INDEXED_VALUE, StoreError, TraceId, TraceStore, convert, fnv64,
    lock, push_id_list, service_map, trace_id_of,
};

/// A span's columns, converted and encoded before the writer is taken.
struct SpanRow {
    trace_id: TraceId,
    span_id: Vec<u8>,
    parent_id: Option<Vec<u8>>,
    service: Arc<str>,
    name: String,
    kind: i32,
    start_us: i64,
    duration_us: i64,
    status: i32,
    /// Index into [`Prepared::resources`]; its row id is known once the writer is held.
    resource: usize,
    scope_name: Arc<str>,
    scope_version: Arc<str>,
    body: Vec<u8>,
}

/// A resource's identity: its service and tags, their JSON and fingerprint, and the texts its
/// attributes are indexed under for tag search.
pub(super) struct ResourceKey {
    fingerprint: u64,
    service: String,
    tags_json: String,
    tags: Vec<KeyValue>,
    indexed: Vec<(String, String)>,
}

impl ResourceKey {
    pub(super) fn new(service: String, tags: Vec<KeyValue>, attrs: &[OtlpKeyValue]) -> Self {
        let tags_json = serde_json::to_string(&tags).unwrap_or_else(|_| "[]".into());
        let fingerprint = fnv64(&[service.as_bytes(), tags_json.as_bytes()]);
        let indexed = attrs
            .iter()
            .filter_map(|kv| {
                let v = kv.value.as_ref().and_then(convert::value_text)?;
                (v.len() <= MAX_INDEXED_VALUE).then(|| (kv.key.clone(), v))
            })
            .collect();
        Self {
            fingerprint,
            service,
            tags_json,
            tags,
            indexed,
        }
    }
}

/// A scope attribute of a trace: (trace, scope name, scope version, key, value text).
type ScopeAttr = (TraceId, Arc<str>, Arc<str>, String, String);

/// A batch of spans turned into rows: everything that needs no database, done before the writer
/// lock and the transaction are taken, so concurrent exports convert in parallel and the single
/// writer only binds and steps.
struct Prepared<'a> {
    resources: Vec<ResourceKey>,
    /// Rows with the map's view of each span, duplicates within the batch left out (first kept).
    rows: Vec<(SpanRow, service_map::MapSpan)>,
    /// Tag-index rows, borrowing the batch's texts until they are bound.
    attrs: HashSet<(Cow<'a, str>, Cow<'a, str>, TraceId)>,
    scope_attrs: HashSet<ScopeAttr>,
    ops: Vec<(String, String, i32)>,
}

impl<'a> Prepared<'a> {
    fn of(batch: &'a [ResourceSpans]) -> Self {
        let mut p = Prepared {
            resources: Vec::with_capacity(batch.len()),
            rows: Vec::new(),
            attrs: HashSet::new(),
            scope_attrs: HashSet::new(),
            ops: Vec::new(),
        };
        let mut seen: HashSet<(TraceId, &[u8])> = HashSet::new();
        let mut ops: HashSet<(Arc<str>, &str, i32)> = HashSet::new();
        for rs in batch {
            let res_attrs = rs
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or(&[]);
            let (service, tags) = convert::process_of(res_attrs);
            let service_arc: Arc<str> = Arc::from(service.as_str());
            let resource = p.resources.len();
            for ss in &rs.scope_spans {
                let (scope_name, scope_version): (Arc<str>, Arc<str>) =
                    ss.scope.as_ref().map_or(("".into(), "".into()), |s| {
                        (s.name.as_str().into(), s.version.as_str().into())
                    });
                let scope_kvs = ss
                    .scope
                    .as_ref()
                    .map_or(&[][..], |s| s.attributes.as_slice());
                for s in &ss.spans {
                    let trace_id = trace_id_of(&s.trace_id);
                    // The first copy of a span wins, as the unique index would decide.
                    if !seen.insert((trace_id, s.span_id.as_slice())) {
                        continue;
                    }
                    // Tags are searched in the span's, its events' and its links' attributes.
                    let own = s
                        .attributes
                        .iter()
                        .chain(s.events.iter().flat_map(|e| &e.attributes))
                        .chain(s.links.iter().flat_map(|l| &l.attributes));
                    for kv in own {
                        if let Some(v) = kv.value.as_ref().and_then(convert::value_cow)
                            && v.len() <= MAX_INDEXED_VALUE
                        {
                            p.attrs
                                .insert((Cow::Borrowed(kv.key.as_str()), v, trace_id));
                        }
                    }
                    for kv in scope_kvs {
                        if let Some(v) = kv.value.as_ref().and_then(convert::value_text)
                            && v.len() <= MAX_INDEXED_VALUE
                        {
                            p.attrs.insert((
                                Cow::Borrowed(kv.key.as_str()),
                                Cow::Owned(v.clone()),
                                trace_id,
                            ));
                            p.scope_attrs.insert((
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
                        p.attrs.insert(("error".into(), "true".into(), trace_id));
                        p.attrs
                            .insert(("otel.status_code".into(), "ERROR".into(), trace_id));
                    }
                    let kind = convert::kind_name(s.kind);
                    if !kind.is_empty() {
                        p.attrs.insert(("span.kind".into(), kind.into(), trace_id));
                    }
                    if ops.insert((service_arc.clone(), s.name.as_str(), s.kind)) {
                        p.ops.push((service.clone(), s.name.clone(), s.kind));
                    }
                    let start_us = (s.start_time_unix_nano / 1000) as i64;
                    let parent = (!s.parent_span_id.is_empty()
                        && s.parent_span_id.iter().any(|b| *b != 0))
                    .then(|| s.parent_span_id.clone());
                    let duration_us = ((s.end_time_unix_nano / 1000) as i64 - start_us).max(0);
                    let map = service_map::MapSpan {
                        trace_id,
                        span_id: s.span_id.clone(),
                        reference: service_map::reference_of(s),
                        child: service_map::Child::of(&service, s, start_us, duration_us, status),
                    };
                    let row = SpanRow {
                        trace_id,
                        span_id: s.span_id.clone(),
                        parent_id: parent,
                        service: service_arc.clone(),
                        name: s.name.clone(),
                        kind: s.kind,
                        start_us,
                        duration_us,
                        status,
                        resource,
                        scope_name: scope_name.clone(),
                        scope_version: scope_version.clone(),
                        body: s.encode_to_vec(),
                    };
                    p.rows.push((row, map));
                }
            }
            p.resources.push(ResourceKey::new(service, tags, res_attrs));
        }
        p
    }
}

/// (trace id, span id) pairs per duplicate probe (two binds each).
const PROBE_CHUNK: usize = 500;

impl TraceStore {
    /// How many of `ids` have at least one span, read within `tx`.
    pub(super) async fn count_stored_traces(
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

    /// Which of `ids` have at least one span, read within `tx`.
    async fn stored_traces(
        tx: &mut sqlx::Transaction<'_, Sqlite>,
        ids: &[TraceId],
    ) -> Result<HashSet<TraceId>, StoreError> {
        let mut known = HashSet::new();
        for chunk in ids.chunks(ID_CHUNK) {
            let mut qb: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT DISTINCT trace_id FROM spans WHERE trace_id IN ");
            push_id_list(&mut qb, chunk.iter().map(|t| t.to_vec()));
            for r in qb.build().fetch_all(&mut **tx).await? {
                known.insert(trace_id_of(r.get::<&[u8], _>(0)));
            }
        }
        Ok(known)
    }

    /// The stored spans among the (trace id, span id) pairs, with their service and kind: a
    /// join of the pairs (a VALUES list) with the unique `(span_id, trace_id)` index, one probe
    /// per pair (a row-value `IN (VALUES …)` would scan the index instead). Used for the
    /// duplicate probe and the service map's parent lookups.
    pub(super) async fn stored_spans(
        conn: &mut sqlx::SqliteConnection,
        pairs: &[(TraceId, &[u8])],
    ) -> Result<HashMap<(TraceId, Vec<u8>), (String, i32)>, StoreError> {
        let mut stored = HashMap::new();
        for chunk in pairs.chunks(PROBE_CHUNK) {
            let mut qb: QueryBuilder<Sqlite> =
                QueryBuilder::new("SELECT s.trace_id, s.span_id, s.service, s.kind FROM (");
            qb.push_values(chunk, |mut b, (t, s)| {
                b.push_bind(t.to_vec()).push_bind(s.to_vec());
            });
            qb.push(
                ") v CROSS JOIN spans s INDEXED BY spans_span_trace \
                 ON s.span_id = v.column2 AND s.trace_id = v.column1",
            );
            for r in qb.build().fetch_all(&mut *conn).await? {
                stored.insert(
                    (trace_id_of(r.get::<&[u8], _>(0)), r.get(1)),
                    (r.get(2), r.get(3)),
                );
            }
        }
        Ok(stored)
    }

    /// Resource id for a (service, tags) pair, inserting it when new.
    pub(super) async fn resource_id(
        &self,
        tx: &mut sqlx::Transaction<'_, Sqlite>,
        key: ResourceKey,
    ) -> Result<i64, StoreError> {
        let fp = key.fingerprint;
        if let Some(id) = lock(&self.resources).by_fingerprint.get(&fp) {
            return Ok(*id);
        }
        // Stored as i64: SQLite integers are signed.
        let fp_i = fp as i64;
        sqlx::query(
            "INSERT OR IGNORE INTO resources (fingerprint, service, tags) VALUES ($1, $2, $3)",
        )
        .bind(fp_i)
        .bind(&key.service)
        .bind(&key.tags_json)
        .execute(&mut **tx)
        .await?;
        let id: i64 = sqlx::query_scalar("SELECT id FROM resources WHERE fingerprint = $1")
            .bind(fp_i)
            .fetch_one(&mut **tx)
            .await?;
        // Process tags are searchable like Jaeger's: indexed once per resource (the first time
        // this process meets it, so a file from before the table gets its rows too).
        for chunk in key.indexed.chunks(INSERT_CHUNK) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT OR IGNORE INTO resource_attrs (key, value, resource_id) ",
            );
            qb.push_values(chunk, |mut b, (k, v)| {
                b.push_bind(k.clone()).push_bind(v.clone()).push_bind(id);
            });
            qb.build().execute(&mut **tx).await?;
        }
        let mut cache = lock(&self.resources);
        cache.by_fingerprint.insert(fp, id);
        cache.by_id.insert(
            id,
            Arc::new(Process {
                service_name: key.service,
                tags: key.tags,
            }),
        );
        Ok(id)
    }

    /// Stores a batch of spans in one transaction; returns the number stored (a span whose trace
    /// id and span id are stored already is skipped, so a retried export is stored once).
    pub async fn insert_spans(&self, batch: &[ResourceSpans]) -> Result<u64, StoreError> {
        // Conversion and protobuf encoding happen before the writer is taken.
        let Prepared {
            resources,
            rows,
            attrs,
            scope_attrs,
            ops,
        } = Prepared::of(batch);
        let mut pending = self.map_pending.lock().await;
        let mut tx = self.write.begin().await?;
        let mut resource_ids = Vec::with_capacity(resources.len());
        for key in resources {
            resource_ids.push(self.resource_id(&mut tx, key).await?);
        }
        let batch_traces: Vec<TraceId> = rows
            .iter()
            .map(|(r, _)| r.trace_id)
            .collect::<HashSet<TraceId>>()
            .into_iter()
            .collect();
        let known = Self::stored_traces(&mut tx, &batch_traces).await?;
        let new_traces = (batch_traces.len() - known.len()) as u64;
        // Only spans of traces stored before can be stored already (a retried export, a span
        // sent twice): those are probed, the others need no lookup.
        let probe: Vec<(TraceId, &[u8])> = rows
            .iter()
            .filter(|(r, _)| known.contains(&r.trace_id))
            .map(|(r, _)| (r.trace_id, r.span_id.as_slice()))
            .collect();
        let dup = if probe.is_empty() {
            HashMap::new()
        } else {
            Self::stored_spans(&mut tx, &probe).await?
        };
        drop(probe);
        let (rows, map_spans): (Vec<SpanRow>, Vec<service_map::MapSpan>) = rows
            .into_iter()
            .filter(|(r, _)| dup.is_empty() || !dup.contains_key(&(r.trace_id, r.span_id.clone())))
            .unzip();
        let mut stored = 0u64;
        // Values are moved into the statement's arguments (no copies); the conflict clause only
        // guards the count: every row left is new (single writer, probed above).
        let mut left = rows.len();
        let mut it = rows.into_iter();
        while left > 0 {
            let n = left.min(INSERT_CHUNK);
            left -= n;
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO spans (trace_id, span_id, parent_id, service, name, kind, start_us, duration_us, \
                 status, resource_id, scope_name, scope_version, body) ",
            );
            qb.push_values(it.by_ref().take(n), |mut b, r| {
                b.push_bind(r.trace_id.to_vec())
                    .push_bind(r.span_id)
                    .push_bind(r.parent_id)
                    .push_bind(r.service)
                    .push_bind(r.name)
                    .push_bind(r.kind)
                    .push_bind(r.start_us)
                    .push_bind(r.duration_us)
                    .push_bind(r.status)
                    .push_bind(resource_ids[r.resource])
                    .push_bind(r.scope_name)
                    .push_bind(r.scope_version)
                    .push_bind(r.body);
            });
            qb.push(" ON CONFLICT (span_id, trace_id) DO NOTHING");
            stored += qb.build().execute(&mut *tx).await?.rows_affected();
        }
        let map_change = Self::map_insert(&mut tx, &pending, &map_spans).await?;
        drop(map_spans);
        let mut left = attrs.len();
        let mut it = attrs.into_iter();
        while left > 0 {
            let n = left.min(INSERT_CHUNK * 3);
            left -= n;
            let mut qb: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT OR IGNORE INTO attrs (key, value, trace_id) ");
            qb.push_values(it.by_ref().take(n), |mut b, (k, v, t)| {
                b.push_bind(k).push_bind(v).push_bind(t.to_vec());
            });
            qb.build().execute(&mut *tx).await?;
        }
        let mut left = scope_attrs.len();
        let mut it = scope_attrs.into_iter();
        while left > 0 {
            let n = left.min(INSERT_CHUNK * 3);
            left -= n;
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT OR IGNORE INTO scope_attrs (trace_id, scope_name, scope_version, key, value) ",
            );
            qb.push_values(it.by_ref().take(n), |mut b, (t, n, v, k, val)| {
                b.push_bind(t.to_vec())
                    .push_bind(n)
                    .push_bind(v)
                    .push_bind(k)
                    .push_bind(val);
            });
            qb.build().execute(&mut *tx).await?;
        }
        let new_ops: Vec<(String, String, i32)> = {
            let known_ops = lock(&self.operations);
            ops.into_iter().filter(|o| !known_ops.contains(o)).collect()
        };
        for chunk in new_ops.chunks(INSERT_CHUNK * 3) {
            let mut qb: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT OR IGNORE INTO operations (service, name, kind) ");
            qb.push_values(chunk, |mut b, (service, name, kind)| {
                b.push_bind(service.clone())
                    .push_bind(name.clone())
                    .push_bind(*kind);
            });
            qb.build().execute(&mut *tx).await?;
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
            let resource_id = self
                .resource_id(&mut tx, ResourceKey::new(service.clone(), tags, res_attrs))
                .await?;
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
}
