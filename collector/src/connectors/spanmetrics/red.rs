//! The RED time series of a `spanmetrics` connector (its `time_series` keys), read by the query
//! API's `GET /api/v1/metrics/red`:
//!
//! - [`TimeSeriesConfig`]: bucket width, bucket count (together the window), series limit.
//! - [`RedStore`]: per series of (`service.name`, span name, span kind) a ring of fixed-width
//!   buckets, each holding calls, errors, the connector's latency histogram, the slowest duration
//!   and two exemplars (the slowest span and the slowest error span). A span lands in the bucket
//!   of its end time. Buckets older than the window are dropped as time moves on, so a ring holds
//!   at most `buckets` of them; series are bounded by `aggregation_cardinality_limit` per service
//!   and `max_series` overall, beyond which spans go to overflow series (one per service and span
//!   kind, then one per span kind for all services).
//! - [`RedRegistry`]: every connector's store by component id, built with the pipelines and handed
//!   to every query API (as the sampling processors' statistics are).
//!
//! The status code is not part of a series' key, unlike the cumulative metrics: errors are a count
//! inside the bucket, which is what a RED page reads, and it keeps one ring per operation instead
//! of up to three.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use collector_api::ids::hex_id;
use collector_api::metrics::{RedExemplar, RedPoint, RedResponse, RedSeries};
use serde::Deserialize;

use crate::component::FieldError;

/// The `time_series` keys of a spanmetrics connector.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeSeriesConfig {
    /// Off: no ring buffers, and the query API's `/api/v1/metrics/red` answers 404.
    pub enabled: bool,
    /// Width of one bucket: the finest step of the RED endpoint.
    #[serde(deserialize_with = "crate::component::duration::deserialize")]
    pub bucket_width: Duration,
    /// Buckets per series: `bucket_width × buckets` is the window kept.
    pub buckets: u32,
    /// Most series overall (not counting the overflow series of spans beyond it).
    pub max_series: u32,
}

impl Default for TimeSeriesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            bucket_width: Duration::from_secs(10),
            buckets: 360,
            max_series: 500,
        }
    }
}

/// Bounds `validate` enforces: a bucket of at least a second keeps rates meaningful; the
/// window and series count bound memory (see [`RedStore::bytes_per_full_series`]).
const MAX_BUCKETS: u32 = 10_000;
const MAX_SERIES: u32 = 100_000;
const MAX_WIDTH: Duration = Duration::from_secs(3600);

impl TimeSeriesConfig {
    /// Errors name `time_series.KEY`.
    pub fn validate(&self) -> Result<(), FieldError> {
        let w = self.bucket_width;
        if w < Duration::from_secs(1)
            || w > MAX_WIDTH
            || !w.subsec_nanos().is_multiple_of(1_000_000)
        {
            return Err(FieldError::new(
                "time_series.bucket_width",
                format!("must be whole milliseconds between 1s and 1h, got {w:?}"),
            ));
        }
        if !(1..=MAX_BUCKETS).contains(&self.buckets) {
            return Err(FieldError::new(
                "time_series.buckets",
                format!("must be between 1 and {MAX_BUCKETS}, got {}", self.buckets),
            ));
        }
        if !(1..=MAX_SERIES).contains(&self.max_series) {
            return Err(FieldError::new(
                "time_series.max_series",
                format!(
                    "must be between 1 and {MAX_SERIES}, got {}",
                    self.max_series
                ),
            ));
        }
        Ok(())
    }
}

const SERVER: i32 = 2;
const CONSUMER: i32 = 5;

/// SERVER and CONSUMER spans are where a request or a message enters a service.
fn is_entry(kind: i32) -> bool {
    kind == SERVER || kind == CONSUMER
}

/// Jaeger's lower-case names, as `spanKind=` takes them (`unspecified` too).
fn kind_name(kind: i32) -> &'static str {
    match crate::store::kind_name(kind) {
        "" => "unspecified",
        k => k,
    }
}

/// One span as the store records it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub service: &'a str,
    pub operation: &'a str,
    /// OTLP span kind; unknown values count as unspecified.
    pub kind: i32,
    pub error: bool,
    pub end_ns: u64,
    pub duration_ns: u64,
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exemplar {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    end_ns: u64,
    duration_ns: u64,
    error: bool,
}

impl Exemplar {
    /// `None` for spans without a usable trace id (nothing to open).
    fn of(o: &Observation<'_>) -> Option<Self> {
        let trace_id: [u8; 16] = o.trace_id.try_into().ok()?;
        let span_id: [u8; 8] = o.span_id.try_into().ok()?;
        (trace_id != [0; 16]).then_some(Self {
            trace_id,
            span_id,
            end_ns: o.end_ns,
            duration_ns: o.duration_ns,
            error: o.error,
        })
    }
}

/// Keeps the slower of `slot` and `e`.
fn keep_slowest(slot: &mut Option<Exemplar>, e: Exemplar) {
    if slot.is_none_or(|s| e.duration_ns > s.duration_ns) {
        *slot = Some(e);
    }
}

/// One bucket of one series.
#[derive(Debug)]
struct Bucket {
    /// Bucket number since the Unix epoch (end time / width).
    epoch: u64,
    calls: u64,
    errors: u64,
    max_ns: u64,
    /// Per histogram bound, then the overflow bucket (as the connector's histogram).
    counts: Box<[u32]>,
    slowest: Option<Exemplar>,
    slowest_error: Option<Exemplar>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct SeriesKey {
    /// `""` for the overflow of `max_series`.
    service: String,
    /// `None`: an overflow series.
    operation: Option<String>,
    kind: i32,
}

#[derive(Debug, Default)]
struct Inner {
    series: HashMap<SeriesKey, VecDeque<Bucket>>,
    /// Regular (non-overflow) series per service, for `aggregation_cardinality_limit`.
    per_service: HashMap<String, usize>,
    /// Regular and per-service overflow series: what `max_series` bounds.
    bounded: usize,
    /// The newest bucket number a sweep ran for.
    swept: u64,
}

/// The RED time series of one spanmetrics connector.
#[derive(Debug)]
pub struct RedStore {
    width_ns: u64,
    capacity: u64,
    max_series: usize,
    /// Series per service before its overflow series (0 = no limit).
    per_service_limit: usize,
    /// Histogram bounds (inclusive upper bounds, as the connector's).
    bounds_ns: Vec<u64>,
    inner: Mutex<Inner>,
}

/// The selection of one query.
#[derive(Debug, Clone, Default)]
pub struct RedQuery {
    /// `None`: the overview (service rows only, no exemplars).
    pub service: Option<String>,
    pub operation: Option<String>,
    /// OTLP span kind.
    pub span_kind: Option<i32>,
    pub lookback: Duration,
    /// Rounded up to whole buckets.
    pub step: Duration,
}

/// The store, locked for a batch of observations.
pub struct Writer<'a> {
    store: &'a RedStore,
    inner: MutexGuard<'a, Inner>,
    now_epoch: u64,
    min_epoch: u64,
}

impl RedStore {
    /// `bounds` are the connector's histogram buckets; `per_service_limit` its
    /// `aggregation_cardinality_limit`.
    pub fn new(cfg: &TimeSeriesConfig, bounds: &[Duration], per_service_limit: usize) -> Self {
        Self {
            width_ns: (cfg.bucket_width.as_nanos() as u64).max(1),
            capacity: u64::from(cfg.buckets.max(1)),
            max_series: cfg.max_series as usize,
            per_service_limit,
            bounds_ns: bounds.iter().map(|d| d.as_nanos() as u64).collect(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The bucket width in ms.
    pub fn bucket_ms(&self) -> u64 {
        self.width_ns / 1_000_000
    }

    /// The window kept: bucket width × buckets.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.width_ns.saturating_mul(self.capacity))
    }

    /// Heap and inline bytes of one series whose every bucket holds spans: the memory bound is
    /// this × (`max_series` + the overflow series).
    pub fn bytes_per_full_series(&self) -> usize {
        let bucket =
            std::mem::size_of::<Bucket>() + (self.bounds_ns.len() + 1) * std::mem::size_of::<u32>();
        bucket * self.capacity as usize
            + std::mem::size_of::<SeriesKey>()
            + std::mem::size_of::<VecDeque<Bucket>>()
    }

    /// Series held now (overflow series included).
    pub fn series_count(&self) -> usize {
        self.lock().series.len()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Locks the store for recording at wall-clock time `now_ns`.
    pub fn writer(&self, now_ns: u64) -> Writer<'_> {
        let now_epoch = now_ns / self.width_ns;
        let mut w = Writer {
            store: self,
            inner: self.lock(),
            now_epoch,
            min_epoch: (now_epoch + 1).saturating_sub(self.capacity),
        };
        w.sweep();
        w
    }

    fn histogram_index(&self, duration_ns: u64) -> usize {
        self.bounds_ns.partition_point(|b| *b < duration_ns)
    }

    /// The `q` quantile (0–1) of a histogram, linear within its bucket, never above `max_ns`.
    fn quantile_ms(&self, counts: &[u64], max_ns: u64, q: f64) -> Option<f64> {
        let n: u64 = counts.iter().sum();
        if n == 0 {
            return None;
        }
        let rank = q * n as f64;
        let mut below = 0u64;
        for (i, c) in counts.iter().enumerate() {
            if *c == 0 {
                continue;
            }
            if (below + c) as f64 >= rank {
                let lower = if i == 0 { 0 } else { self.bounds_ns[i - 1] };
                let upper = self.bounds_ns.get(i).copied().unwrap_or(max_ns).max(lower);
                let within = ((rank - below as f64) / *c as f64).clamp(0.0, 1.0);
                let ns = (lower as f64 + (upper - lower) as f64 * within).min(max_ns as f64);
                return Some(ns / 1e6);
            }
            below += c;
        }
        Some(max_ns as f64 / 1e6)
    }

    /// RED of the series `q` selects, at wall-clock time `now_ns`, answered as connector `id`.
    pub fn query(&self, id: &str, q: &RedQuery, now_ns: u64) -> RedResponse {
        let width = self.width_ns;
        let k = (q.step.as_nanos() as u64)
            .div_ceil(width)
            .clamp(1, self.capacity);
        let window = (q.lookback.as_nanos() as u64)
            .div_ceil(width)
            .clamp(1, self.capacity);
        // Points start on multiples of the step (so a point keeps its meaning as time passes):
        // from the step holding the lookback's first bucket to the step holding now.
        let now_epoch = now_ns / width;
        let first = (now_epoch + 1).saturating_sub(window) / k * k;
        let last = now_epoch / k * k;
        let points = (last - first) / k + 1;
        let grid = Grid {
            first,
            step: k,
            points: points as usize,
            width_ns: width,
            now_ns,
        };
        let inner = self.lock();
        // Per service: its entry series and all its series, aggregated.
        let mut by_service: BTreeMap<&str, (Vec<Agg<'_>>, Vec<Agg<'_>>)> = BTreeMap::new();
        let mut operations = Vec::new();
        let mut keys: Vec<&SeriesKey> = inner
            .series
            .keys()
            .filter(|k| q.service.as_ref().is_none_or(|s| *s == k.service))
            .collect();
        keys.sort();
        for key in keys {
            let ring = &inner.series[key];
            let op = key.operation.as_deref().unwrap_or("");
            let aggs = grid.aggregate(ring, self.bounds_ns.len() + 1, op);
            let (entry, all) = by_service.entry(key.service.as_str()).or_insert_with(|| {
                (
                    grid.empty(self.bounds_ns.len() + 1),
                    grid.empty(self.bounds_ns.len() + 1),
                )
            });
            for (a, b) in all.iter_mut().zip(&aggs) {
                a.merge(b);
            }
            if is_entry(key.kind) {
                for (a, b) in entry.iter_mut().zip(&aggs) {
                    a.merge(b);
                }
            }
            let selected = q.service.is_some()
                && q.operation
                    .as_ref()
                    .is_none_or(|o| key.operation.as_ref() == Some(o))
                && q.span_kind.is_none_or(|k| k == key.kind);
            if selected {
                operations.push(self.series(
                    &grid,
                    &aggs,
                    key.service.clone(),
                    key.operation.clone(),
                    Some(kind_name(key.kind).to_string()),
                    is_entry(key.kind),
                    key.operation.is_none(),
                    true,
                ));
            }
        }
        let services = by_service
            .into_iter()
            .map(|(service, (entry, all))| {
                let has_entry = entry.iter().any(|a| a.calls > 0);
                self.series(
                    &grid,
                    if has_entry { &entry } else { &all },
                    service.to_string(),
                    None,
                    None,
                    has_entry,
                    service.is_empty(),
                    q.service.is_some(),
                )
            })
            .collect();
        RedResponse {
            connector: id.to_string(),
            bucket_ms: width / 1_000_000,
            step_ms: k * width / 1_000_000,
            start_ms: first * width / 1_000_000,
            end_ms: (last + k) * width / 1_000_000,
            services,
            operations,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn series(
        &self,
        grid: &Grid,
        aggs: &[Agg<'_>],
        service: String,
        operation: Option<String>,
        span_kind: Option<String>,
        entry_spans: bool,
        overflow: bool,
        with_exemplars: bool,
    ) -> RedSeries {
        let mut total = Agg::new(self.bounds_ns.len() + 1);
        let mut exemplars = Vec::new();
        for a in aggs {
            total.merge(a);
            if with_exemplars {
                let slowest = a.slowest.map(|(e, op)| to_exemplar(e, op));
                let error = a.slowest_error.map(|(e, op)| to_exemplar(e, op));
                let same = slowest
                    .as_ref()
                    .zip(error.as_ref())
                    .is_some_and(|(s, e)| s == e);
                exemplars.extend(slowest);
                if !same {
                    exemplars.extend(error);
                }
            }
        }
        let points = aggs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let start = grid.start_ns(i);
                let end = (start + grid.step * grid.width_ns).min(grid.now_ns);
                self.point(a, start, end)
            })
            .collect();
        RedSeries {
            service,
            operation,
            span_kind,
            entry_spans,
            overflow,
            total: self.point(&total, grid.start_ns(0), grid.now_ns),
            points,
            exemplars,
        }
    }

    fn point(&self, a: &Agg<'_>, start_ns: u64, end_ns: u64) -> RedPoint {
        // The elapsed part of the interval, at least a millisecond (a query at a bucket's start).
        let secs = (end_ns.saturating_sub(start_ns) as f64 / 1e9).max(1e-3);
        let calls = a.calls;
        RedPoint {
            time_ms: start_ns / 1_000_000,
            calls,
            errors: a.errors,
            rate: calls as f64 / secs,
            error_rate: (calls > 0).then(|| a.errors as f64 / calls as f64),
            p50_ms: self.quantile_ms(&a.counts, a.max_ns, 0.50),
            p95_ms: self.quantile_ms(&a.counts, a.max_ns, 0.95),
            p99_ms: self.quantile_ms(&a.counts, a.max_ns, 0.99),
        }
    }
}

fn to_exemplar(e: Exemplar, operation: &str) -> RedExemplar {
    RedExemplar {
        trace_id: hex_id(&e.trace_id),
        span_id: hex_id(&e.span_id),
        operation: operation.to_string(),
        time_ms: e.end_ns / 1_000_000,
        duration_ms: e.duration_ns as f64 / 1e6,
        error: e.error,
    }
}

/// The points of one query: `points` intervals of `step` buckets from bucket `first`.
struct Grid {
    first: u64,
    step: u64,
    points: usize,
    width_ns: u64,
    now_ns: u64,
}

impl Grid {
    fn start_ns(&self, i: usize) -> u64 {
        (self.first + i as u64 * self.step) * self.width_ns
    }

    fn empty<'a>(&self, hist: usize) -> Vec<Agg<'a>> {
        (0..self.points).map(|_| Agg::new(hist)).collect()
    }

    /// The ring's buckets summed per point.
    fn aggregate<'a>(&self, ring: &VecDeque<Bucket>, hist: usize, op: &'a str) -> Vec<Agg<'a>> {
        let mut out = self.empty(hist);
        let from = ring.partition_point(|b| b.epoch < self.first);
        for b in ring.range(from..) {
            let i = ((b.epoch - self.first) / self.step) as usize;
            if let Some(a) = out.get_mut(i) {
                a.add(b, op);
            }
        }
        out
    }
}

/// Buckets summed (of one series, or merged across series).
struct Agg<'a> {
    calls: u64,
    errors: u64,
    max_ns: u64,
    counts: Vec<u64>,
    slowest: Option<(Exemplar, &'a str)>,
    slowest_error: Option<(Exemplar, &'a str)>,
}

fn keep_slower<'a>(slot: &mut Option<(Exemplar, &'a str)>, e: Option<(Exemplar, &'a str)>) {
    if let Some(e) = e
        && slot.is_none_or(|s| e.0.duration_ns > s.0.duration_ns)
    {
        *slot = Some(e);
    }
}

impl<'a> Agg<'a> {
    fn new(hist: usize) -> Self {
        Self {
            calls: 0,
            errors: 0,
            max_ns: 0,
            counts: vec![0; hist],
            slowest: None,
            slowest_error: None,
        }
    }

    fn add(&mut self, b: &Bucket, op: &'a str) {
        self.calls += b.calls;
        self.errors += b.errors;
        self.max_ns = self.max_ns.max(b.max_ns);
        for (a, c) in self.counts.iter_mut().zip(b.counts.iter()) {
            *a += u64::from(*c);
        }
        keep_slower(&mut self.slowest, b.slowest.map(|e| (e, op)));
        keep_slower(&mut self.slowest_error, b.slowest_error.map(|e| (e, op)));
    }

    fn merge(&mut self, o: &Agg<'a>) {
        self.calls += o.calls;
        self.errors += o.errors;
        self.max_ns = self.max_ns.max(o.max_ns);
        for (a, c) in self.counts.iter_mut().zip(&o.counts) {
            *a += c;
        }
        keep_slower(&mut self.slowest, o.slowest);
        keep_slower(&mut self.slowest_error, o.slowest_error);
    }
}

impl Writer<'_> {
    /// Once per bucket: drops buckets that left the window and series left empty.
    fn sweep(&mut self) {
        if self.inner.swept == self.now_epoch && !self.inner.series.is_empty() {
            return;
        }
        self.inner.swept = self.now_epoch;
        let min = self.min_epoch;
        let Inner {
            series,
            per_service,
            bounded,
            ..
        } = &mut *self.inner;
        series.retain(|key, ring| {
            while ring.front().is_some_and(|b| b.epoch < min) {
                ring.pop_front();
            }
            if !ring.is_empty() {
                return true;
            }
            if !key.service.is_empty() {
                *bounded = bounded.saturating_sub(1);
            }
            if key.operation.is_some()
                && let Some(n) = per_service.get_mut(&key.service)
            {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_service.remove(&key.service);
                }
            }
            false
        });
    }

    /// The series a span of (service, operation, kind) counts in, created within the limits.
    fn key(&mut self, service: &str, operation: &str, kind: i32) -> SeriesKey {
        let regular = SeriesKey {
            service: service.to_string(),
            operation: Some(operation.to_string()),
            kind,
        };
        if self.inner.series.contains_key(&regular) {
            return regular;
        }
        let limit = self.store.per_service_limit;
        let full = limit > 0 && self.inner.per_service.get(service).copied().unwrap_or(0) >= limit;
        let key = if full {
            SeriesKey {
                operation: None,
                ..regular
            }
        } else {
            regular
        };
        if self.inner.series.contains_key(&key) {
            return key;
        }
        if self.inner.bounded >= self.store.max_series {
            return SeriesKey {
                service: String::new(),
                operation: None,
                kind,
            };
        }
        self.inner.bounded += 1;
        if key.operation.is_some() {
            *self
                .inner
                .per_service
                .entry(key.service.clone())
                .or_default() += 1;
        }
        key
    }

    /// Counts one span. Spans that ended before the window are ignored; spans from the future
    /// (a skewed clock) count in the current bucket.
    pub fn record(&mut self, o: &Observation<'_>) {
        let epoch = (o.end_ns / self.store.width_ns).min(self.now_epoch);
        if epoch < self.min_epoch {
            return;
        }
        let kind = if (0..=5).contains(&o.kind) { o.kind } else { 0 };
        let key = self.key(o.service, o.operation, kind);
        let hist = self.store.bounds_ns.len() + 1;
        let capacity = self.store.capacity as usize;
        let ring = self.inner.series.entry(key).or_default();
        let i = match ring.back() {
            Some(b) if b.epoch == epoch => ring.len() - 1,
            _ => {
                let i = ring.partition_point(|b| b.epoch < epoch);
                if ring.get(i).is_none_or(|b| b.epoch != epoch) {
                    // Grow by doubling, but not past the ring's capacity (VecDeque would go
                    // to the next power of two: 512 slots for 360 buckets).
                    if ring.len() == ring.capacity() {
                        let target = (ring.len() * 2).clamp(4, capacity.max(ring.len() + 1));
                        ring.reserve_exact(target - ring.len());
                    }
                    ring.insert(
                        i,
                        Bucket {
                            epoch,
                            calls: 0,
                            errors: 0,
                            max_ns: 0,
                            counts: vec![0; hist].into_boxed_slice(),
                            slowest: None,
                            slowest_error: None,
                        },
                    );
                }
                i
            }
        };
        // Only after a clock that went backwards can a ring hold more than its capacity.
        let mut i = i;
        while ring.len() > capacity && i > 0 {
            ring.pop_front();
            i -= 1;
        }
        let idx = self.store.histogram_index(o.duration_ns);
        let b = &mut ring[i];
        b.calls += 1;
        b.counts[idx] = b.counts[idx].saturating_add(1);
        b.max_ns = b.max_ns.max(o.duration_ns);
        if o.error {
            b.errors += 1;
        }
        if let Some(e) = Exemplar::of(o) {
            keep_slowest(&mut b.slowest, e);
            if o.error {
                keep_slowest(&mut b.slowest_error, e);
            }
        }
    }
}

/// Every spanmetrics connector's time series by component id.
#[derive(Debug, Default)]
pub struct RedRegistry {
    stores: BTreeMap<String, Arc<RedStore>>,
}

impl RedRegistry {
    pub fn insert(&mut self, id: impl Into<String>, store: Arc<RedStore>) {
        self.stores.insert(id.into(), store);
    }

    pub fn is_empty(&self) -> bool {
        self.stores.is_empty()
    }

    /// Connector `id`; without one the unnamed `spanmetrics`, else the first in id order.
    /// `Err` says what is configured.
    pub fn resolve(&self, id: Option<&str>) -> Result<(&str, &Arc<RedStore>), String> {
        if self.stores.is_empty() {
            return Err(
                "no spanmetrics connector with time series is configured in this \
                        collector: add `spanmetrics` to a traces pipeline's exporters \
                        (its `time_series` are on by default; see docs/collector.md)"
                    .into(),
            );
        }
        let found = match id {
            Some(id) => self.stores.get_key_value(id),
            None => self
                .stores
                .get_key_value("spanmetrics")
                .or_else(|| self.stores.iter().next()),
        };
        found.map(|(k, v)| (k.as_str(), v)).ok_or_else(|| {
            let known: Vec<&str> = self.stores.keys().map(String::as_str).collect();
            format!(
                "no spanmetrics connector {:?}; the connectors with time series are: {}",
                id.unwrap_or_default(),
                known.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;
    /// A wall-clock origin on a bucket boundary (10 s buckets).
    const T0: u64 = 1_800_000_000 * S;

    fn store(bucket_width_s: u64, buckets: u32, max_series: u32, per_service: usize) -> RedStore {
        let cfg = TimeSeriesConfig {
            enabled: true,
            bucket_width: Duration::from_secs(bucket_width_s),
            buckets,
            max_series,
        };
        cfg.validate().unwrap();
        let bounds = crate::connectors::spanmetrics::ExplicitBuckets::default().buckets;
        RedStore::new(&cfg, &bounds, per_service)
    }

    struct Span {
        service: &'static str,
        op: &'static str,
        kind: i32,
        error: bool,
        end_ns: u64,
        ms: u64,
        trace: u8,
    }

    fn sp(service: &'static str, op: &'static str, end_ns: u64, ms: u64) -> Span {
        Span {
            service,
            op,
            kind: SERVER,
            error: false,
            end_ns,
            ms,
            trace: 1,
        }
    }

    fn record(st: &RedStore, now_ns: u64, spans: &[Span]) {
        let mut w = st.writer(now_ns);
        for s in spans {
            w.record(&Observation {
                service: s.service,
                operation: s.op,
                kind: s.kind,
                error: s.error,
                end_ns: s.end_ns,
                duration_ns: s.ms * MS,
                trace_id: &[s.trace; 16],
                span_id: &[s.trace; 8],
            });
        }
    }

    fn q(service: Option<&str>, lookback_s: u64, step_s: u64) -> RedQuery {
        RedQuery {
            service: service.map(str::to_string),
            lookback: Duration::from_secs(lookback_s),
            step: Duration::from_secs(step_s),
            ..Default::default()
        }
    }

    fn buckets_held(st: &RedStore) -> Vec<usize> {
        let inner = st.lock();
        let mut v: Vec<usize> = inner.series.values().map(VecDeque::len).collect();
        v.sort();
        v
    }

    #[test]
    fn defaults_validate_and_bad_values_name_their_key() {
        TimeSeriesConfig::default().validate().unwrap();
        let bad = |f: fn(&mut TimeSeriesConfig)| {
            let mut c = TimeSeriesConfig::default();
            f(&mut c);
            c.validate().unwrap_err().path
        };
        assert_eq!(
            bad(|c| c.bucket_width = Duration::from_millis(500)),
            "time_series.bucket_width"
        );
        assert_eq!(
            bad(|c| c.bucket_width = Duration::from_nanos(1_500_000_001)),
            "time_series.bucket_width"
        );
        assert_eq!(bad(|c| c.buckets = 0), "time_series.buckets");
        assert_eq!(bad(|c| c.buckets = 10_001), "time_series.buckets");
        assert_eq!(bad(|c| c.max_series = 0), "time_series.max_series");
        // Unknown keys are refused (the connector's whole config is `deny_unknown_fields`).
        let unknown = serde_json::from_value::<crate::connectors::spanmetrics::SpanMetricsConfig>(
            serde_json::json!({"time_series": {"width": "10s"}}),
        );
        assert!(
            unknown
                .unwrap_err()
                .to_string()
                .contains("unknown field `width`")
        );
        let cfg: crate::connectors::spanmetrics::SpanMetricsConfig = serde_json::from_value(
            serde_json::json!({"time_series": {"bucket_width": "1m", "buckets": 60}}),
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(
            cfg.time_series.max_series, 500,
            "the others keep their defaults"
        );
    }

    #[test]
    fn the_ring_rotates_and_never_holds_more_than_its_buckets() {
        // 10 s × 6 = one minute.
        let st = store(10, 6, 100, 0);
        // One span per bucket for three minutes, each recorded when its bucket is current.
        for i in 0..18 {
            let t = T0 + i * 10 * S + 5 * S;
            record(&st, t, &[sp("svc", "op", t, 10)]);
            assert!(
                buckets_held(&st)[0] <= 6,
                "bucket {i}: {:?}",
                buckets_held(&st)
            );
        }
        assert_eq!(buckets_held(&st), vec![6]);
        let now = T0 + 17 * 10 * S + 5 * S;
        let r = st.query("spanmetrics", &q(Some("svc"), 60, 10), now);
        assert_eq!(r.services[0].points.len(), 6);
        assert!(r.services[0].points.iter().all(|p| p.calls == 1));
        assert_eq!(r.start_ms, (T0 + 12 * 10 * S) / MS, "the last minute");
        assert_eq!(r.end_ms, (T0 + 18 * 10 * S) / MS);
        // A span that ended before the window is ignored; one from the future counts now.
        record(
            &st,
            now,
            &[
                sp("svc", "op", now - 70 * S, 10),
                sp("svc", "op", now + 3600 * S, 10),
            ],
        );
        let r = st.query("spanmetrics", &q(Some("svc"), 60, 10), now);
        let calls: Vec<u64> = r.services[0].points.iter().map(|p| p.calls).collect();
        assert_eq!(calls, vec![1, 1, 1, 1, 1, 2]);
        // A minute and a half later with no traffic, the next write sweeps the series away.
        record(&st, now + 90 * S, &[]);
        assert_eq!(st.series_count(), 0);
    }

    #[test]
    fn late_spans_land_in_their_own_bucket() {
        let st = store(10, 6, 100, 0);
        let now = T0 + 55 * S;
        // Out of order: the newest bucket first, then two older ones.
        record(
            &st,
            now,
            &[
                sp("svc", "op", T0 + 51 * S, 10),
                sp("svc", "op", T0 + 11 * S, 10),
                sp("svc", "op", T0 + 31 * S, 10),
                sp("svc", "op", T0 + 12 * S, 10),
            ],
        );
        assert_eq!(buckets_held(&st), vec![3]);
        let r = st.query("spanmetrics", &q(Some("svc"), 60, 10), now);
        let calls: Vec<u64> = r.services[0].points.iter().map(|p| p.calls).collect();
        assert_eq!(calls, vec![0, 2, 0, 1, 0, 1]);
    }

    #[test]
    fn steps_sum_buckets_and_rates_divide_by_the_elapsed_time() {
        let st = store(10, 360, 100, 0);
        // 30 calls in [T0, T0+30s), 1 in the current minute's first 15 s.
        let spans: Vec<Span> = (0..30).map(|i| sp("svc", "op", T0 + i * S, 10)).collect();
        let now = T0 + 75 * S;
        record(&st, now, &spans);
        record(&st, now, &[sp("svc", "op", T0 + 61 * S, 10)]);
        let r = st.query("spanmetrics", &q(Some("svc"), 120, 60), now);
        assert_eq!(r.step_ms, 60_000);
        let pts = &r.services[0].points;
        // Minutes on the minute: the one before T0 (where the 2 min lookback begins), T0's, now's.
        assert_eq!(pts.len(), 3);
        assert_eq!(pts[1].time_ms, T0 / MS);
        assert_eq!(pts[0].calls, 0);
        assert_eq!((pts[1].calls, pts[1].rate), (30, 0.5));
        // The current minute has run 15 s: 1 call / 15 s.
        assert_eq!(pts[2].calls, 1);
        assert!((pts[2].rate - 1.0 / 15.0).abs() < 1e-9, "{}", pts[2].rate);
        assert_eq!(r.services[0].total.calls, 31);
        // A step that is not a whole number of buckets is rounded up.
        let r = st.query("spanmetrics", &q(Some("svc"), 120, 15), now);
        assert_eq!((r.step_ms, r.services[0].points.len()), (20_000, 6));
        // An empty interval has no percentiles and no error rate.
        assert_eq!(r.services[0].points[4].calls, 0);
        assert_eq!(r.services[0].points[4].p95_ms, None);
        assert_eq!(r.services[0].points[4].error_rate, None);
    }

    #[test]
    fn percentiles_come_from_the_histogram_and_never_exceed_the_slowest() {
        let st = store(10, 6, 100, 0);
        let now = T0 + 5 * S;
        // 90 spans of 3 ms (bucket 2–4 ms), 9 of 300 ms (200–400 ms), 1 of 1250 ms (1000–1400).
        let mut spans: Vec<Span> = (0..90).map(|_| sp("svc", "op", T0 + S, 3)).collect();
        spans.extend((0..9).map(|_| sp("svc", "op", T0 + S, 300)));
        spans.push(sp("svc", "op", T0 + S, 1250));
        record(&st, now, &spans);
        let p = &st.query("x", &q(Some("svc"), 10, 10), now).services[0].points[0];
        let p50 = p.p50_ms.unwrap();
        let p95 = p.p95_ms.unwrap();
        let p99 = p.p99_ms.unwrap();
        assert!((2.0..=4.0).contains(&p50), "p50 {p50}");
        assert!((200.0..=400.0).contains(&p95), "p95 {p95}");
        // Rank 99 of 100 is the last of the 300 ms spans: the top of their bucket.
        assert!((200.0..=400.0).contains(&p99), "p99 {p99}");
        // One span alone: every percentile is capped at it, not at its bucket's bound.
        let st = store(10, 6, 100, 0);
        record(&st, now, &[sp("svc", "op", T0 + S, 1250)]);
        let p = &st.query("x", &q(Some("svc"), 10, 10), now).services[0].points[0];
        assert_eq!(p.p99_ms, Some(1250.0));
        assert!(p.p50_ms.unwrap() <= 1250.0 && p.p50_ms.unwrap() > 1000.0);
        // Beyond the last bound (15 s), the slowest span bounds the bucket.
        let st = store(10, 6, 100, 0);
        record(&st, now, &[sp("svc", "op", T0 + S, 20_000)]);
        let p = &st.query("x", &q(Some("svc"), 10, 10), now).services[0].points[0];
        let p99 = p.p99_ms.unwrap();
        assert!(p99 > 15_000.0 && p99 <= 20_000.0, "p99 {p99}");
    }

    #[test]
    fn exemplars_are_the_slowest_span_and_the_slowest_error_per_point() {
        let st = store(10, 6, 100, 0);
        let now = T0 + 25 * S;
        let mut spans = vec![
            Span {
                trace: 1,
                ..sp("svc", "GET /a", T0 + S, 100)
            },
            Span {
                trace: 2,
                ..sp("svc", "GET /a", T0 + 2 * S, 1200)
            },
            Span {
                trace: 3,
                error: true,
                ..sp("svc", "GET /a", T0 + 3 * S, 40)
            },
            Span {
                trace: 4,
                error: true,
                ..sp("svc", "GET /b", T0 + 4 * S, 50)
            },
            // Bucket 2: the slowest is itself an error: one exemplar.
            Span {
                trace: 5,
                error: true,
                ..sp("svc", "GET /b", T0 + 21 * S, 900)
            },
        ];
        // No trace id: counted, never an exemplar.
        spans.push(Span {
            trace: 0,
            ..sp("svc", "GET /a", T0 + 21 * S, 5000)
        });
        record(&st, now, &spans);
        let r = st.query("x", &q(Some("svc"), 30, 10), now);
        let svc = &r.services[0];
        let ex: Vec<(String, String, bool)> = svc
            .exemplars
            .iter()
            .map(|e| (e.trace_id[..2].to_string(), e.operation.clone(), e.error))
            .collect();
        assert_eq!(
            ex,
            vec![
                ("02".into(), "GET /a".into(), false),
                ("04".into(), "GET /b".into(), true),
                ("05".into(), "GET /b".into(), true),
            ]
        );
        let slow = &svc.exemplars[0];
        assert_eq!(slow.trace_id, "02".repeat(16));
        assert_eq!(slow.span_id, "02".repeat(8));
        assert_eq!(slow.duration_ms, 1200.0);
        assert_eq!(slow.time_ms, (T0 + 2 * S) / MS);
        assert_eq!(svc.total.calls, 6);
        assert_eq!(svc.total.errors, 3);
        assert_eq!(svc.total.error_rate, Some(0.5));
        // Per operation, its own exemplars; the overview has none.
        let a = r
            .operations
            .iter()
            .find(|o| o.operation.as_deref() == Some("GET /a"))
            .unwrap();
        assert_eq!(a.exemplars.len(), 2, "{:?}", a.exemplars);
        assert!(
            st.query("x", &q(None, 30, 10), now).services[0]
                .exemplars
                .is_empty()
        );
    }

    #[test]
    fn service_rows_count_entry_spans_and_operations_filter() {
        let st = store(10, 6, 100, 0);
        let now = T0 + 5 * S;
        record(
            &st,
            now,
            &[
                sp("gw", "POST /orders", T0, 300),
                Span {
                    kind: 3,
                    ..sp("gw", "POST", T0, 290)
                },
                Span {
                    kind: 1,
                    ..sp("gw", "authenticate", T0, 2)
                },
                Span {
                    kind: 5,
                    ..sp("order", "process orders", T0, 8)
                },
                sp("order", "POST /orders", T0, 280),
                Span {
                    kind: 1,
                    ..sp("batch", "nightly", T0, 9)
                },
                Span {
                    kind: 1,
                    ..sp("batch", "nightly", T0, 9)
                },
            ],
        );
        let r = st.query("x", &q(None, 10, 10), now);
        let rows: Vec<(&str, u64, bool)> = r
            .services
            .iter()
            .map(|s| (s.service.as_str(), s.total.calls, s.entry_spans))
            .collect();
        assert_eq!(
            rows,
            vec![("batch", 2, false), ("gw", 1, true), ("order", 2, true)],
            "SERVER + CONSUMER spans; all spans of a service without them"
        );
        assert!(r.operations.is_empty());
        let r = st.query("x", &q(Some("gw"), 10, 10), now);
        let ops: Vec<(Option<&str>, Option<&str>)> = r
            .operations
            .iter()
            .map(|o| (o.operation.as_deref(), o.span_kind.as_deref()))
            .collect();
        assert_eq!(
            ops,
            vec![
                (Some("POST"), Some("client")),
                (Some("POST /orders"), Some("server")),
                (Some("authenticate"), Some("internal")),
            ]
        );
        let mut one = q(Some("gw"), 10, 10);
        one.span_kind = Some(3);
        assert_eq!(st.query("x", &one, now).operations.len(), 1);
        one.span_kind = None;
        one.operation = Some("authenticate".into());
        let r = st.query("x", &one, now);
        assert_eq!(r.operations.len(), 1);
        assert_eq!(r.services[0].total.calls, 1, "the service row stays whole");
    }

    #[test]
    fn series_are_bounded_per_service_and_overall() {
        // At most 2 series per service, 5 overall.
        let st = store(10, 6, 5, 2);
        let now = T0 + 5 * S;
        record(
            &st,
            now,
            &[
                sp("a", "1", T0, 1),
                sp("a", "2", T0, 1),
                sp("a", "3", T0, 1),
                sp("a", "4", T0, 1),
                sp("b", "1", T0, 1),
                sp("b", "2", T0, 1),
                sp("c", "1", T0, 1),
                sp("d", "1", T0, 1),
                sp("a", "1", T0, 1),
            ],
        );
        let r = st.query("x", &q(Some("a"), 10, 10), now);
        let a: Vec<(Option<&str>, bool, u64)> = r
            .operations
            .iter()
            .map(|o| (o.operation.as_deref(), o.overflow, o.total.calls))
            .collect();
        assert_eq!(
            a,
            vec![
                (None, true, 2),
                (Some("1"), false, 2),
                (Some("2"), false, 1)
            ]
        );
        let r = st.query("x", &q(None, 10, 10), now);
        let rows: Vec<(&str, bool, u64)> = r
            .services
            .iter()
            .map(|s| (s.service.as_str(), s.overflow, s.total.calls))
            .collect();
        // a: 2 series + overflow, b: 2 → 5; c and d go to the overall overflow.
        assert_eq!(rows, vec![("", true, 2), ("a", false, 5), ("b", false, 2)]);
        assert_eq!(st.series_count(), 6);
        // Once the window has passed, the sweep frees the places for new series.
        record(&st, now + 60 * S, &[sp("c", "1", now + 60 * S, 1)]);
        let r = st.query("x", &q(None, 10, 10), now + 60 * S);
        assert_eq!(r.services.len(), 1);
        assert_eq!(
            (r.services[0].service.as_str(), r.services[0].overflow),
            ("c", false)
        );
    }

    /// The worst case the defaults allow: 500 series, every bucket of the hour holding spans.
    /// Prints how long recording and the queries take (`--nocapture`); the bound asserted is
    /// loose (debug builds on a shared machine), the printed numbers are the measurement.
    #[test]
    fn a_full_store_records_and_answers_quickly() {
        let st = store(10, 360, 500, 0);
        let services = [
            "api-gateway",
            "order-service",
            "payment-service",
            "inventory-service",
        ];
        let ops: Vec<String> = (0..125).map(|i| format!("op {i}")).collect();
        let t = std::time::Instant::now();
        let mut spans = 0u64;
        for b in 0..360u64 {
            let now = T0 + b * 10 * S + 5 * S;
            let mut w = st.writer(now);
            for (i, op) in ops.iter().enumerate() {
                for svc in services {
                    w.record(&Observation {
                        service: svc,
                        operation: op,
                        kind: if i == 0 { SERVER } else { 1 },
                        error: b % 7 == 0,
                        end_ns: now,
                        duration_ns: (b % 50 + 1) * MS,
                        trace_id: &[1; 16],
                        span_id: &[2; 8],
                    });
                    spans += 1;
                }
            }
        }
        let record = t.elapsed();
        assert_eq!(st.series_count(), 500);
        let now = T0 + 359 * 10 * S + 5 * S;
        let t = std::time::Instant::now();
        let overview = st.query("x", &q(None, 3600, 30), now);
        let overview_took = t.elapsed();
        let t = std::time::Instant::now();
        let one = st.query("x", &q(Some("payment-service"), 3600, 10), now);
        let one_took = t.elapsed();
        assert_eq!(overview.services.len(), 4);
        assert_eq!(one.operations.len(), 125);
        assert_eq!(one.services[0].points.len(), 360);
        println!(
            "time series, 500 full series: {spans} spans recorded in {record:?} ({:.0} spans/s); \
             overview (1h, 30s step) {overview_took:?}; one service with 125 operations \
             (1h, 10s step) {one_took:?}",
            spans as f64 / record.as_secs_f64()
        );
        assert!(overview_took < Duration::from_secs(2) && one_took < Duration::from_secs(2));
    }

    /// Prints the memory bound (run with `--nocapture` to read it) and fills one series to it.
    #[test]
    fn a_full_series_stays_within_its_computed_bound() {
        let st = store(10, 360, 500, 0);
        let per_series = st.bytes_per_full_series();
        // Fill every bucket of one series, a span per bucket, each written when current.
        for i in 0..400 {
            let t = T0 + i * 10 * S;
            record(&st, t, &[sp("svc", "op", t, 10)]);
        }
        let held = buckets_held(&st);
        assert_eq!(held, vec![360]);
        let cap = st.lock().series.values().next().unwrap().capacity();
        assert!(cap <= 360 + 4, "ring capacity {cap} for 360 buckets");
        println!(
            "time series: {per_series} bytes per full series (10 s × 360, 17 histogram buckets); \
             500 series → {:.1} MiB",
            (per_series * 506) as f64 / (1024.0 * 1024.0)
        );
        assert!(per_series < 100_000, "{per_series}");
    }
}
