//! The service map's aggregate (`/api/v1/dependencies`, and Jaeger's `/api/dependencies`):
//! the `service_map` table holds, per minute, per (kind, source, target) and per latency-histogram
//! bucket, how many spans and how many ERROR spans. It is kept up to date in `insert_spans`'
//! transaction, so a query reads a few hundred rows per minute of window instead of probing the
//! parent of every stored span (0.84 s over 1.1M spans before).
//!
//! An edge needs the parent's service, and the parent may arrive in a later batch than its child
//! (every service exports on its own): a child whose parent is neither in its batch nor stored
//! waits in `map_pending` (mirrored in memory, so each inserted span checks it with a hash
//! lookup) until the parent comes, at most [`PENDING_MAX_AGE_US`] and [`MAX_PENDING`] of them.
//!
//! A file written before the table existed is backfilled from its spans when opened
//! (`map_state.backfilled` marks it done).

use std::collections::{BTreeMap, HashMap, HashSet};

use collector_api::dependencies::{
    DependenciesResponse, EdgeKind, Latency, MapEdge, MapNode, NodeKind, service_node_id,
    topic_node_id,
};
use collector_api::jaeger::DependencyLink;
use futures::TryStreamExt;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyKind;
use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;
use prost::Message;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::{StoreError, TraceId, TraceStore, trace_id_of};

/// Width of one aggregate bucket.
pub(super) const MINUTE_US: i64 = 60_000_000;
/// A child waits this long (by its start time) for its parent, then is forgotten.
pub(super) const PENDING_MAX_AGE_US: i64 = 15 * MINUTE_US;
/// Most children waiting for their parent; beyond it a new orphan is not kept.
pub(super) const MAX_PENDING: usize = 100_000;

/// The `kind` column of `service_map`.
mod row_kind {
    /// A SERVER or CONSUMER span of `target` (a service's requests); `source` is empty.
    pub const ENTRY: &str = "entry";
    pub const HTTP: &str = "http";
    pub const RPC: &str = "rpc";
    /// A PRODUCER span of service `source` into topic `target`.
    pub const PUBLISH: &str = "publish";
    /// A CONSUMER span of service `target` reading topic `source`.
    pub const CONSUME: &str = "consume";
    /// A CONSUMER span (with a topic) whose PRODUCER is in service `source`: the service pair
    /// Jaeger's `/api/dependencies` lists; the map draws it through the topic instead.
    pub const HANDOFF: &str = "handoff";
    /// The same for a CONSUMER span without `messaging.destination.name`: drawn directly.
    pub const HANDOFF_DIRECT: &str = "handoff_direct";
}

/// Histogram bucket of a duration: 8 log-linear buckets per power of two (the top bit's position
/// and the next three bits), so a bucket is at most 1/8 of its lower bound wide.
pub fn bucket_of(us: u64) -> u16 {
    if us <= 1 {
        return 0;
    }
    let e = 63 - us.leading_zeros();
    let sub = if e >= 3 {
        (us >> (e - 3)) & 7
    } else {
        (us << (3 - e)) & 7
    };
    (e * 8 + sub as u32) as u16
}

/// The value a bucket stands for: its midpoint (within 6.25 % of any duration in it).
pub fn bucket_value(idx: u16) -> u64 {
    let (e, sub) = ((idx / 8) as i32, (idx % 8) as f64);
    let width = 2f64.powi(e) / 8.0;
    let lower = (8.0 + sub) * width;
    (lower + width / 2.0).round() as u64
}

/// The `p` quantile (0–1) of a histogram (bucket → count): the bucket holding the ⌈p·n⌉-th value.
pub fn percentile(hist: &BTreeMap<u16, u64>, p: f64) -> u64 {
    let n: u64 = hist.values().sum();
    let rank = ((p * n as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (b, c) in hist {
        seen += c;
        if seen >= rank {
            return bucket_value(*b);
        }
    }
    0
}

fn latency(hist: &BTreeMap<u16, u64>) -> Latency {
    Latency {
        p50_us: percentile(hist, 0.50),
        p95_us: percentile(hist, 0.95),
        p99_us: percentile(hist, 0.99),
    }
}

/// What the map needs of a span on the child side of an edge (also what a waiting child keeps).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Child {
    pub service: String,
    pub kind: i32,
    pub start_us: i64,
    pub duration_us: i64,
    pub error: bool,
    /// Carries `rpc.system`.
    pub rpc: bool,
    /// `messaging.destination.name` of a PRODUCER or CONSUMER span.
    pub topic: Option<String>,
}

impl Child {
    /// From an OTLP span of `service` (start and duration as stored).
    pub fn of(service: &str, s: &OtlpSpan, start_us: i64, duration_us: i64, status: i32) -> Self {
        let topic = matches!(s.kind, 4 | 5)
            .then(|| {
                s.attributes
                    .iter()
                    .find(|kv| kv.key == "messaging.destination.name")
                    .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                        AnyKind::StringValue(t) if !t.is_empty() => Some(t.clone()),
                        _ => None,
                    })
            })
            .flatten();
        Self {
            service: service.to_string(),
            kind: s.kind,
            start_us,
            duration_us,
            error: status == 2,
            rpc: s.attributes.iter().any(|kv| kv.key == "rpc.system"),
            topic,
        }
    }
}

/// The span an edge's parent side is looked up by: the parent, or (a CONSUMER without one) the
/// span its first link points at, the producer of the message.
pub(super) fn reference_of(s: &OtlpSpan) -> Option<(TraceId, Vec<u8>)> {
    let nonzero = |b: &[u8]| !b.is_empty() && b.iter().any(|x| *x != 0);
    if nonzero(&s.parent_span_id) {
        return Some((trace_id_of(&s.trace_id), s.parent_span_id.clone()));
    }
    if s.kind == 5 {
        let l = s.links.first()?;
        return nonzero(&l.span_id).then(|| (trace_id_of(&l.trace_id), l.span_id.clone()));
    }
    None
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Cell {
    minute: i64,
    kind: &'static str,
    source: String,
    target: String,
    le: u16,
}

/// Counts about to be added to `service_map`.
#[derive(Debug, Default)]
pub(super) struct Agg {
    cells: HashMap<Cell, (u64, u64)>,
}

impl Agg {
    fn add(&mut self, kind: &'static str, source: &str, target: &str, c: &Child) {
        let cell = Cell {
            minute: c.start_us.div_euclid(MINUTE_US),
            kind,
            source: source.to_string(),
            target: target.to_string(),
            le: bucket_of(c.duration_us.max(0) as u64),
        };
        let v = self.cells.entry(cell).or_default();
        v.0 += 1;
        v.1 += c.error as u64;
    }

    /// What a span counts for by itself: a service's request, a message into or out of a topic.
    pub fn own(&mut self, c: &Child) {
        if matches!(c.kind, 2 | 5) {
            self.add(row_kind::ENTRY, "", &c.service, c);
        }
        match (c.kind, &c.topic) {
            (4, Some(t)) => self.add(row_kind::PUBLISH, &c.service, t, c),
            (5, Some(t)) => self.add(row_kind::CONSUME, t, &c.service, c),
            _ => {}
        }
    }

    /// The edge from a parent (service, span kind) to `c`, when they are in different services.
    pub fn resolved(&mut self, c: &Child, parent_service: &str, parent_kind: i32) {
        if parent_service == c.service {
            return;
        }
        let kind = if c.kind == 5 && parent_kind == 4 {
            if c.topic.is_some() {
                row_kind::HANDOFF
            } else {
                row_kind::HANDOFF_DIRECT
            }
        } else if c.rpc {
            row_kind::RPC
        } else {
            row_kind::HTTP
        };
        self.add(kind, parent_service, &c.service, c);
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Adds the counts to `service_map` (one upsert per cell).
    pub async fn flush(self, conn: &mut sqlx::SqliteConnection) -> Result<(), StoreError> {
        let cells: Vec<_> = self.cells.into_iter().collect();
        for chunk in cells.chunks(1000) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO service_map (minute, kind, source, target, le, calls, errors) ",
            );
            qb.push_values(chunk, |mut b, (c, (n, e))| {
                b.push_bind(c.minute)
                    .push_bind(c.kind)
                    .push_bind(c.source.clone())
                    .push_bind(c.target.clone())
                    .push_bind(c.le as i64)
                    .push_bind(*n as i64)
                    .push_bind(*e as i64);
            });
            qb.push(
                " ON CONFLICT (minute, kind, source, target, le) DO UPDATE SET \
                 calls = calls + excluded.calls, errors = errors + excluded.errors",
            );
            qb.build().execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// A span by (trace id, span id).
type SpanKey = (TraceId, Vec<u8>);

/// Children waiting for their parent span, by the parent's (trace id, span id); mirrors
/// `map_pending`.
#[derive(Debug, Default)]
pub(super) struct Pending {
    by_parent: HashMap<SpanKey, Vec<(Vec<u8>, Child)>>,
    len: usize,
}

/// One inserted span, as the map sees it.
pub(super) struct MapSpan {
    pub trace_id: TraceId,
    pub span_id: Vec<u8>,
    pub reference: Option<(TraceId, Vec<u8>)>,
    pub child: Child,
}

impl TraceStore {
    /// Counts `spans` (the ones this transaction inserted) into the map: their own rows, the edges
    /// to parents in the batch or stored, the edges from children that waited for them; children
    /// whose parent is missing start waiting. Returns the changes to `pending`, which the caller
    /// applies once the transaction committed, still holding the lock.
    pub(super) async fn map_insert(
        tx: &mut sqlx::SqliteConnection,
        pending: &Pending,
        spans: &[MapSpan],
    ) -> Result<PendingChange, StoreError> {
        let mut agg = Agg::default();
        let mut change = PendingChange::default();
        let in_batch: HashMap<(TraceId, &[u8]), &Child> = spans
            .iter()
            .map(|s| ((s.trace_id, s.span_id.as_slice()), &s.child))
            .collect();
        // Parents outside the batch are looked up together (one join per chunk of keys, see
        // `TraceStore::stored_spans`), not one query per span.
        let mut wanted: Vec<(TraceId, &[u8])> = Vec::new();
        let mut wanted_set: HashSet<(TraceId, &[u8])> = HashSet::new();
        for s in spans {
            if let Some((rt, rs)) = &s.reference
                && !in_batch.contains_key(&(*rt, rs.as_slice()))
                && wanted_set.insert((*rt, rs.as_slice()))
            {
                wanted.push((*rt, rs.as_slice()));
            }
        }
        let stored = TraceStore::stored_spans(&mut *tx, &wanted).await?;
        for s in spans {
            agg.own(&s.child);
            let Some((rt, rs)) = &s.reference else {
                continue;
            };
            if let Some(p) = in_batch.get(&(*rt, rs.as_slice())) {
                agg.resolved(&s.child, &p.service, p.kind);
                continue;
            }
            match stored.get(&(*rt, rs.clone())) {
                Some((svc, kind)) => agg.resolved(&s.child, svc, *kind),
                None if pending.len + change.added.len() < MAX_PENDING => {
                    change
                        .added
                        .push(((*rt, rs.clone()), s.span_id.clone(), s.child.clone()));
                }
                None => {}
            }
        }
        let mut resolved_keys: HashSet<(TraceId, Vec<u8>)> = HashSet::new();
        for s in spans {
            let key = (s.trace_id, s.span_id.clone());
            if let Some(children) = pending.by_parent.get(&key) {
                for (_, c) in children {
                    agg.resolved(c, &s.child.service, s.child.kind);
                }
                resolved_keys.insert(key);
            }
        }
        for (t, p) in &resolved_keys {
            sqlx::query("DELETE FROM map_pending WHERE trace_id = $1 AND parent_id = $2")
                .bind(t.as_slice())
                .bind(p.as_slice())
                .execute(&mut *tx)
                .await?;
        }
        change.resolved = resolved_keys.into_iter().collect();
        for chunk in change.added.chunks(1000) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT OR IGNORE INTO map_pending (trace_id, parent_id, span_id, service, kind, \
                 start_us, duration_us, error, rpc, topic) ",
            );
            qb.push_values(chunk, |mut b, ((t, p), sid, c)| {
                b.push_bind(t.to_vec())
                    .push_bind(p.clone())
                    .push_bind(sid.clone())
                    .push_bind(c.service.clone())
                    .push_bind(c.kind)
                    .push_bind(c.start_us)
                    .push_bind(c.duration_us)
                    .push_bind(c.error)
                    .push_bind(c.rpc)
                    .push_bind(c.topic.clone());
            });
            qb.build().execute(&mut *tx).await?;
        }
        if !agg.is_empty() {
            agg.flush(tx).await?;
        }
        Ok(change)
    }

    /// Loads `map_pending` into memory (at open).
    pub(super) async fn load_pending(read: &SqlitePool) -> Result<Pending, StoreError> {
        let rows = sqlx::query(
            "SELECT trace_id, parent_id, span_id, service, kind, start_us, duration_us, error, rpc, topic \
             FROM map_pending",
        )
        .fetch_all(read)
        .await?;
        let mut p = Pending::default();
        for r in rows {
            let key = (trace_id_of(r.get::<&[u8], _>(0)), r.get::<Vec<u8>, _>(1));
            let child = Child {
                service: r.get(3),
                kind: r.get(4),
                start_us: r.get(5),
                duration_us: r.get(6),
                error: r.get(7),
                rpc: r.get(8),
                topic: r.get(9),
            };
            p.by_parent.entry(key).or_default().push((r.get(2), child));
            p.len += 1;
        }
        Ok(p)
    }

    /// Builds `service_map` from the stored spans when this file has not been (a file from before
    /// the table existed), then marks it done.
    pub(super) async fn map_backfill(
        write: &SqlitePool,
        read: &SqlitePool,
    ) -> Result<(), StoreError> {
        let done: Option<i64> =
            sqlx::query_scalar("SELECT value FROM map_state WHERE key = 'backfilled'")
                .fetch_optional(read)
                .await?;
        if done.is_some() {
            return Ok(());
        }
        let t0 = std::time::Instant::now();
        let mut agg = Agg::default();
        let mut by_link: Vec<((TraceId, Vec<u8>), Child)> = Vec::new();
        let mut n = 0u64;
        {
            // The body (for topic, rpc.system and links) is read only where it matters.
            let mut rows = sqlx::query(
                "SELECT c.service, c.kind, c.start_us, c.duration_us, c.status, \
                        CASE WHEN c.kind IN (4, 5) OR (p.service IS NOT NULL AND p.service <> c.service) \
                             THEN c.body END, p.service, p.kind \
                 FROM spans c LEFT JOIN spans p INDEXED BY spans_span_trace \
                   ON c.parent_id IS NOT NULL AND p.span_id = c.parent_id AND p.trace_id = c.trace_id",
            )
            .fetch(read);
            while let Some(r) = rows.try_next().await? {
                n += 1;
                let service: String = r.get(0);
                let (kind, start, dur, status): (i32, i64, i64, i32) =
                    (r.get(1), r.get(2), r.get(3), r.get(4));
                let body: Option<Vec<u8>> = r.get(5);
                let span = match body {
                    Some(b) => OtlpSpan::decode(b.as_slice())?,
                    None => OtlpSpan {
                        kind,
                        ..Default::default()
                    },
                };
                let child = Child::of(&service, &span, start, dur, status);
                agg.own(&child);
                let parent: Option<String> = r.get(6);
                match parent {
                    Some(ps) => agg.resolved(&child, &ps, r.get(7)),
                    None if kind == 5 && span.parent_span_id.iter().all(|b| *b == 0) => {
                        if let Some(rf) = reference_of(&span) {
                            by_link.push((rf, child));
                        }
                    }
                    None => {}
                }
            }
        }
        for ((t, s), child) in by_link {
            let parent: Option<(String, i32)> = sqlx::query_as(
                "SELECT service, kind FROM spans WHERE span_id = $1 AND trace_id = $2",
            )
            .bind(s)
            .bind(t.to_vec())
            .fetch_optional(read)
            .await?;
            if let Some((ps, pk)) = parent {
                agg.resolved(&child, &ps, pk);
            }
        }
        let mut tx = write.begin().await?;
        sqlx::query("DELETE FROM service_map")
            .execute(&mut *tx)
            .await?;
        agg.flush(&mut tx).await?;
        sqlx::query("INSERT OR REPLACE INTO map_state (key, value) VALUES ('backfilled', 1)")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if n > 0 {
            tracing::info!(
                spans = n,
                elapsed_ms = t0.elapsed().as_millis() as u64,
                "trace store: service map built from the stored spans"
            );
        }
        Ok(())
    }

    /// Drops map rows older than `cutoff_us` and children that waited too long (prune).
    pub(super) async fn map_prune(&self, cutoff_us: i64, now_us: i64) -> Result<(), StoreError> {
        // Also as old as the oldest span left: the map tells what the stored spans tell.
        let oldest: Option<i64> = sqlx::query_scalar("SELECT MIN(start_us) FROM spans")
            .fetch_one(&self.write)
            .await?;
        let floor = oldest.unwrap_or(i64::MAX).max(cutoff_us);
        sqlx::query("DELETE FROM service_map WHERE minute < $1")
            .bind(floor.div_euclid(MINUTE_US))
            .execute(&self.write)
            .await?;
        let mut pending = self.map_pending.lock().await;
        let too_old = now_us - PENDING_MAX_AGE_US;
        sqlx::query("DELETE FROM map_pending WHERE start_us < $1")
            .bind(too_old)
            .execute(&self.write)
            .await?;
        pending.by_parent.retain(|_, v| {
            v.retain(|(_, c)| c.start_us >= too_old);
            !v.is_empty()
        });
        pending.len = pending.by_parent.values().map(Vec::len).sum();
        Ok(())
    }

    /// The map over spans starting in the minutes from the one holding `end_us - lookback_us` to
    /// the one holding `end_us`.
    pub async fn service_map(
        &self,
        end_us: u64,
        lookback_us: u64,
    ) -> Result<DependenciesResponse, StoreError> {
        let (lo, hi) = minutes(end_us, lookback_us);
        let rows: Vec<(String, String, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT kind, source, target, le, SUM(calls), SUM(errors) FROM service_map \
             WHERE minute >= $1 AND minute <= $2 GROUP BY kind, source, target, le",
        )
        .bind(lo)
        .bind(hi)
        .fetch_all(&self.read)
        .await?;
        let start_us = (lo * MINUTE_US) as u64;
        let end_us = (((hi + 1) * MINUTE_US) as u64).min(super::now_us().max(end_us));
        Ok(build_response(rows, start_us, end_us.max(start_us + 1)))
    }

    /// Jaeger's `/api/dependencies` from the map: service pairs of calls and Kafka hand-offs.
    pub async fn dependencies(
        &self,
        end_us: u64,
        lookback_us: u64,
    ) -> Result<Vec<DependencyLink>, StoreError> {
        let (lo, hi) = minutes(end_us, lookback_us);
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT source, target, SUM(calls) FROM service_map \
             WHERE minute >= $1 AND minute <= $2 AND kind IN ('http', 'rpc', 'handoff', 'handoff_direct') \
             GROUP BY source, target ORDER BY source, target",
        )
        .bind(lo)
        .bind(hi)
        .fetch_all(&self.read)
        .await?;
        Ok(links(rows))
    }
}

/// Staged changes to [`Pending`], applied once the transaction committed.
#[derive(Debug, Default)]
pub(super) struct PendingChange {
    added: Vec<(SpanKey, Vec<u8>, Child)>,
    resolved: Vec<(TraceId, Vec<u8>)>,
}

impl PendingChange {
    pub fn apply(self, p: &mut Pending) {
        for k in self.resolved {
            if let Some(v) = p.by_parent.remove(&k) {
                p.len -= v.len();
            }
        }
        for (k, sid, c) in self.added {
            let v = p.by_parent.entry(k).or_default();
            if !v.iter().any(|(s, _)| *s == sid) {
                v.push((sid, c));
                p.len += 1;
            }
        }
    }
}

/// Jaeger's links from (parent service, child service, count) rows.
pub(super) fn links(rows: Vec<(String, String, i64)>) -> Vec<DependencyLink> {
    rows.into_iter()
        .map(|(parent, child, n)| DependencyLink {
            parent,
            child,
            call_count: n as u64,
        })
        .collect()
}

/// The first and last minute of a window.
fn minutes(end_us: u64, lookback_us: u64) -> (i64, i64) {
    let lo = (end_us.saturating_sub(lookback_us) as i64).div_euclid(MINUTE_US);
    (lo, (end_us as i64).div_euclid(MINUTE_US))
}

/// Calls, errors and the latency histogram of one (kind, source, target).
type Tally = (u64, u64, BTreeMap<u16, u64>);
type Sums = BTreeMap<(String, String, String), Tally>;

/// The response from the summed rows (kind, source, target, bucket, calls, errors).
pub(super) fn build_response(
    rows: Vec<(String, String, String, i64, i64, i64)>,
    start_us: u64,
    end_us: u64,
) -> DependenciesResponse {
    let mut sums: Sums = BTreeMap::new();
    for (kind, source, target, le, calls, errors) in rows {
        let v = sums.entry((kind, source, target)).or_default();
        v.0 += calls as u64;
        v.1 += errors as u64;
        *v.2.entry(le as u16).or_default() += calls as u64;
    }
    let secs = (end_us - start_us) as f64 / 1e6;
    let ratio = |e: u64, n: u64| if n == 0 { 0.0 } else { e as f64 / n as f64 };
    let mut services: BTreeMap<String, Option<&Tally>> = BTreeMap::new();
    let mut topics: BTreeMap<String, (Option<&_>, Option<&_>)> = BTreeMap::new();
    let mut edges = Vec::new();
    for ((kind, source, target), v) in &sums {
        let (from, to, ek) = match kind.as_str() {
            row_kind::ENTRY => {
                services.insert(target.clone(), Some(v));
                continue;
            }
            row_kind::HANDOFF => continue,
            row_kind::HTTP => (
                service_node_id(source),
                service_node_id(target),
                EdgeKind::Http,
            ),
            row_kind::RPC => (
                service_node_id(source),
                service_node_id(target),
                EdgeKind::Rpc,
            ),
            row_kind::HANDOFF_DIRECT => (
                service_node_id(source),
                service_node_id(target),
                EdgeKind::Kafka,
            ),
            row_kind::PUBLISH => {
                topics.entry(target.clone()).or_default().0 = Some(v);
                services.entry(source.clone()).or_default();
                (
                    service_node_id(source),
                    topic_node_id(target),
                    EdgeKind::Kafka,
                )
            }
            row_kind::CONSUME => {
                topics.entry(source.clone()).or_default().1 = Some(v);
                services.entry(target.clone()).or_default();
                (
                    topic_node_id(source),
                    service_node_id(target),
                    EdgeKind::Kafka,
                )
            }
            _ => continue,
        };
        if matches!(
            kind.as_str(),
            row_kind::HTTP | row_kind::RPC | row_kind::HANDOFF_DIRECT
        ) {
            services.entry(source.clone()).or_default();
            services.entry(target.clone()).or_default();
        }
        edges.push(MapEdge {
            source: from,
            target: to,
            kind: ek,
            calls: v.0,
            errors: v.1,
            rate: v.0 as f64 / secs,
            error_rate: ratio(v.1, v.0),
            latency: latency(&v.2),
        });
    }
    edges.sort_by(|a, b| (&a.source, &a.target, a.kind).cmp(&(&b.source, &b.target, b.kind)));
    let node = |id: String, kind: NodeKind, name: &str, v: Option<&Tally>| {
        let (calls, errors) = v.map_or((0, 0), |v| (v.0, v.1));
        MapNode {
            id,
            kind,
            name: name.to_string(),
            calls,
            errors,
            rate: calls as f64 / secs,
            error_rate: ratio(errors, calls),
            latency: v.filter(|v| v.0 > 0).map(|v| latency(&v.2)),
        }
    };
    let mut nodes: Vec<MapNode> = services
        .iter()
        .map(|(name, v)| node(service_node_id(name), NodeKind::Service, name, *v))
        .collect();
    nodes.extend(topics.iter().map(|(name, (publish, consume))| {
        node(
            topic_node_id(name),
            NodeKind::Topic,
            name,
            publish.or(*consume),
        )
    }));
    DependenciesResponse {
        start_us,
        end_us,
        nodes,
        edges,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_their_values_close() {
        let mut last = 0;
        for us in [
            2u64,
            3,
            5,
            8,
            9,
            100,
            1000,
            1234,
            65_000,
            1_000_000,
            3_600_000_000,
        ] {
            let b = bucket_of(us);
            assert!(b > last || us == 2, "{us} → {b} after {last}");
            last = b;
            let v = bucket_value(b) as f64;
            assert!(
                (v - us as f64).abs() <= us as f64 * 0.0625 + 0.5,
                "{us} stands as {v}"
            );
        }
        assert_eq!(bucket_of(0), bucket_of(1));
        assert!(bucket_of(u64::MAX) < 512);
    }

    #[test]
    fn percentiles_pick_the_ranked_bucket() {
        let mut h = BTreeMap::new();
        // 1..=100 ms: p50 ≈ 50 ms, p95 ≈ 95 ms, p99 ≈ 99 ms.
        for ms in 1..=100u64 {
            *h.entry(bucket_of(ms * 1000)).or_default() += 1;
        }
        for (p, want) in [(0.5, 50_000.0), (0.95, 95_000.0), (0.99, 99_000.0)] {
            let got = percentile(&h, p) as f64;
            assert!((got - want).abs() <= want * 0.0625, "p{p}: {got} vs {want}");
        }
        assert_eq!(percentile(&BTreeMap::new(), 0.5), 0);
    }
}
