//! The write path: span batches, log records. WRITE_DESIGN

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use collector_api::jaeger::{KeyValue, Process};
use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{
    ID_CHUNK, INSERT_CHUNK, MAX_INDEXED_VALUE, StoreError, TraceId, TraceStore, convert, fnv64,
    lock, push_id_list, service_map, trace_id_of,
};

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
}
