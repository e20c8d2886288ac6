//! `probabilistic_sampler` processor: keeps `sampling_percentage` % of traces, deciding by a
//! seeded FNV-1a hash of the trace id so every span (and log record) of a trace gets the
//! same decision, in every collector configured with the same `hash_seed`. What it keeps and drops
//! is counted per item in its [`ProbabilisticStats`] (spans, or log records in a logs pipeline).

use std::sync::Arc;

use serde::Deserialize;

use crate::component::{FieldError, SignalKind};
use crate::pipeline::signal::Signal;
use crate::pipeline::{ComponentCounters, ConsumeError, Consumer};
use crate::sampling::{ComponentCounter, ProbabilisticStats};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbabilisticSamplerConfig {
    pub sampling_percentage: f64,
    pub hash_seed: u32,
    /// Only `hash_seed` is implemented. contrib's default, when `mode` is not set and `hash_seed` is
    /// 0, is `proportional` (W3C trace-id randomness): set `mode: hash_seed` in a contrib fleet's
    /// configs for the same decisions everywhere.
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

/// contrib's `hash_seed` accept threshold: `uint32(pct * percentageScaleFactor)` with `pct` a
/// `float32` and the scale factor 16384 / 100 as a `float32` constant — the product in 32-bit
/// precision, truncated (a percentage above 100 counts as 100).
pub fn hash_seed_threshold(percentage: f64) -> u32 {
    let pct = (percentage as f32).min(100.0);
    (pct * 163.84f32) as u32
}

/// The hash-seed decision, as contrib's: 32-bit FNV-1a over the seed (little endian) then the
/// trace id; its low 14 bits are below the threshold.
pub fn keep_trace(trace_id: &[u8], seed: u32, percentage: f64) -> bool {
    let threshold = hash_seed_threshold(percentage);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An independent 32-bit FNV-1a (the published algorithm).
    fn reference_fnv1a32(data: &[u8]) -> u32 {
        data.iter().fold(2_166_136_261u32, |h, b| {
            (h ^ u32::from(*b)).wrapping_mul(16_777_619)
        })
    }

    #[test]
    fn hash_seed_mode_decides_as_contrib() {
        assert_eq!(reference_fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(reference_fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(reference_fnv1a32(b"foobar"), 0xbf9c_f968);
        // float32 arithmetic, truncated: 10 % → 1638 of 16384 buckets, 33.33 % → 5460, 100 % → all.
        assert_eq!(hash_seed_threshold(10.0), 1638);
        assert_eq!(hash_seed_threshold(33.33), 5460);
        assert_eq!(hash_seed_threshold(100.0), 16384);
        assert_eq!(hash_seed_threshold(250.0), 16384);
        assert_eq!(hash_seed_threshold(0.001), 0);
        for seed in [0u32, 22, 0xdead_beef] {
            for i in 0u32..500 {
                let mut id = [0u8; 16];
                id[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
                id[12..].copy_from_slice(&i.to_le_bytes());
                let mut bytes = seed.to_le_bytes().to_vec();
                bytes.extend_from_slice(&id);
                let expected = (reference_fnv1a32(&bytes) & 0x3fff) < 1638;
                assert_eq!(keep_trace(&id, seed, 10.0), expected, "seed {seed} id {i}");
            }
        }
    }
}
