//! Reads of known traces: whole traces and windows of their spans (ordered by start, duration,
//! arrival over the `(trace_id, start_us, duration_us)` index), the bodiless headers the query
//! API builds a trace's tree from, bodies by row, summaries, facts about many traces at once,
//! a trace's logs, and the legacy dependencies join.

use std::collections::{BTreeMap, HashMap, HashSet};

use collector_api::ids::hex_id;
use collector_api::jaeger::{DependencyLink, Process, Span, Trace};
use collector_api::v1::{LogRecord, ServiceSpanCount, SpanWindow, TraceFacts, TraceSummary};
use futures::TryStreamExt;
use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;
use prost::Message;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{
    ID_CHUNK, SpanHeader, StoreError, TraceId, TraceStore, convert, push_id_list, service_map,
    span_key, trace_id_of,
};

impl TraceStore {
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
}
