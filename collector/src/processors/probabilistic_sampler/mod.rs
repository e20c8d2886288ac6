//! `probabilistic_sampler` processor: keeps `sampling_percentage` % of traces, deciding by a
//! seeded FNV-1a hash of the trace id so every span (and log record) of a trace gets the
//! same decision, in every collector configured with the same `hash_seed`. What it keeps and drops
//! is counted per item in its [`ProbabilisticStats`] (spans, or log records in a logs pipeline).

use std::sync::Arc;

use serde::Deserialize;

use crate::config::{FieldError, SignalKind};
use crate::pipeline::signal::Signal;
use crate::pipeline::{ComponentCounters, ConsumeError, Consumer};
use crate::sampling::{ComponentCounter, ProbabilisticStats};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbabilisticSamplerConfig {
    pub sampling_percentage: f64,
    pub hash_seed: u32,
    /// Only `hash_seed` is implemented (the default of the OpenTelemetry Collector's legacy mode).
    pub mode: String,
    /// Drop items that carry no trace id (true) or keep them (false).
    pub fail_closed: bool,
}

impl Default for ProbabilisticSamplerConfig {
    fn default() -> Self {
        Self {
            sampling_percentage: 0.0,
            hash_seed: 0,
            mode: "hash_seed".into(),
            fail_closed: true,
        }
    }
}

impl ProbabilisticSamplerConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        if !(0.0..=100.0).contains(&self.sampling_percentage) || self.sampling_percentage.is_nan() {
            return Err(FieldError::new(
                "sampling_percentage",
                format!(
                    "must be between 0 and 100, got {}",
                    self.sampling_percentage
                ),
            ));
        }
        if self.mode != "hash_seed" {
            return Err(FieldError::new(
                "mode",
                format!("unsupported mode `{}`; expected `hash_seed`", self.mode),
            ));
        }
        Ok(())
    }
}

const BUCKETS: u32 = 0x4000;

/// The hash-seed decision: FNV-1a over the seed (little endian) and the trace id, 14 bits.
pub fn keep_trace(trace_id: &[u8], seed: u32, percentage: f64) -> bool {
    let threshold = (percentage / 100.0 * f64::from(BUCKETS)) as u32;
    let mut h: u32 = 0x811c_9dc5;
    for b in seed.to_le_bytes().iter().chain(trace_id) {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h & (BUCKETS - 1)) < threshold
}

pub struct ProbabilisticSampler<T> {
    cfg: ProbabilisticSamplerConfig,
    next: Arc<dyn Consumer<T>>,
    counters: Arc<ComponentCounters>,
    stats: Arc<ProbabilisticStats>,
}

impl<T: Signal> ProbabilisticSampler<T> {
    pub fn new(
        cfg: ProbabilisticSamplerConfig,
        next: Arc<dyn Consumer<T>>,
        counters: Arc<ComponentCounters>,
        stats: Arc<ProbabilisticStats>,
    ) -> Self {
        Self {
            cfg,
            next,
            counters,
            stats,
        }
    }

    /// Counts kept and dropped items of this signal (metrics carry no trace id and are not counted).
    fn count(&self, kept: u64, dropped: u64) {
        let (k, d) = match T::KIND {
            SignalKind::Traces => (&self.stats.spans_sampled, &self.stats.spans_not_sampled),
            SignalKind::Logs => (
                &self.stats.log_records_sampled,
                &self.stats.log_records_not_sampled,
            ),
            SignalKind::Metrics => return,
        };
        ComponentCounter::inc(k, kept);
        ComponentCounter::inc(d, dropped);
    }
}

#[async_trait::async_trait]
impl<T: Signal> Consumer<T> for ProbabilisticSampler<T> {
    async fn consume(&self, mut batch: Vec<T>) -> Result<(), ConsumeError> {
        let (seed, pct, fail_closed) = (
            self.cfg.hash_seed,
            self.cfg.sampling_percentage,
            self.cfg.fail_closed,
        );
        let before = crate::pipeline::signal::count(&batch);
        let mut removed = 0;
        for item in &mut batch {
            removed += item.retain_by_trace_id(&mut |id| {
                if id.is_empty() || id.iter().all(|b| *b == 0) {
                    !fail_closed
                } else {
                    keep_trace(id, seed, pct)
                }
            });
        }
        ComponentCounters::add(&self.counters.dropped, removed as u64);
        self.count((before - removed) as u64, removed as u64);
        batch.retain(|i| i.item_count() > 0);
        if batch.is_empty() {
            return Ok(());
        }
        self.next.consume(batch).await
    }
}
