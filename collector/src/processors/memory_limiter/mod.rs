//! `memory_limiter` processor: measures memory every `check_interval` — by default the heap the
//! global allocator (jemalloc) has allocated (`measure: heap`), or the cgroup v2 `memory.current`
//! (`measure: cgroup`), or the process RSS (`measure: rss`); above the soft limit
//! (`limit - spike`) it refuses new data with `ConsumeError::Refused` (gRPC RESOURCE_EXHAUSTED /
//! HTTP 503 + Retry-After at the receiver), so senders retry later. Data already accepted is
//! never dropped here. `limit_percentage` is of the cgroup v2 `memory.max` when one is set, else
//! of `/proc/meminfo`'s `MemTotal`. A collector that cannot take the configured measurement
//! refuses to start ([`MemoryGauge::start`] fails) rather than never limiting.
//!
//! One [`MemoryGauge`] per processor id is shared by every pipeline using it; tests inject the
//! memory reading through [`MemoryProbe`].

mod config;
pub mod measure;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use config::{Measure, MemoryLimiterConfig};
pub use measure::{process_rss_bytes, total_memory_bytes};

use crate::pipeline::{ConsumeError, Consumer};

/// Reads the current memory use in bytes.
pub type MemoryProbe = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The probe for `measure`, checked once: `Err` names what is missing on this platform / build.
pub fn probe_for(measure: Measure) -> Result<MemoryProbe, String> {
    match measure {
        Measure::Heap => {
            if !crate::alloc::heap_stats_available() {
                return Err(
                    "measure: heap needs the allocator statistics, and this collector was \
                     built without jemalloc (cargo feature `jemalloc`); use measure: cgroup or rss"
                        .into(),
                );
            }
            measure::heap_allocated_bytes()
                .ok_or("measure: heap: jemalloc's stats.allocated cannot be read")?;
            crate::alloc::tune();
            Ok(Arc::new(|| measure::heap_allocated_bytes().unwrap_or(0)))
        }
        Measure::Cgroup => {
            let cg = measure::Cgroup::current().ok_or(
                "measure: cgroup needs cgroup v2 (a `0::/path` line in /proc/self/cgroup and \
                 memory.current under /sys/fs/cgroup); use measure: heap or rss",
            )?;
            cg.memory_current().ok_or_else(|| {
                format!(
                    "measure: cgroup: cannot read {}/memory.current",
                    cg.dir.display()
                )
            })?;
            Ok(Arc::new(move || cg.memory_current().unwrap_or(0)))
        }
        Measure::Rss => {
            process_rss_bytes().ok_or("measure: rss needs /proc/self/statm")?;
            Ok(Arc::new(|| process_rss_bytes().unwrap_or(0)))
        }
    }
}

/// The shared measurement: updated by a background task every `check_interval`.
pub struct MemoryGauge {
    pub hard_limit: u64,
    pub soft_limit: u64,
    pub last_reading: AtomicU64,
    over: AtomicBool,
    probe: MemoryProbe,
    measure: Measure,
}

impl MemoryGauge {
    /// Starts measuring (`probe` replaces the configured measurement). Fails when the configured
    /// measurement, or the total memory `limit_percentage` needs, is unavailable here.
    pub fn start(
        cfg: &MemoryLimiterConfig,
        probe: Option<MemoryProbe>,
    ) -> Result<Arc<Self>, String> {
        let total = if cfg.limit_mib == 0 {
            let (total, source) = total_memory_bytes().ok_or(
                "limit_percentage needs the total memory (cgroup v2 memory.max or /proc/meminfo); set limit_mib",
            )?;
            tracing::info!(
                total_mib = total / (1024 * 1024),
                source,
                "memory_limiter: limit_percentage is a percentage of this total"
            );
            total
        } else {
            0
        };
        let (hard, soft) = cfg.limits(total);
        let injected = probe.is_some();
        let probe = match probe {
            Some(p) => p,
            None => probe_for(cfg.measure)?,
        };
        let g = Arc::new(Self {
            hard_limit: hard,
            soft_limit: soft,
            last_reading: AtomicU64::new(0),
            over: AtomicBool::new(false),
            probe,
            measure: cfg.measure,
        });
        g.check();
        tracing::info!(
            measure = cfg.measure.name(),
            injected = injected,
            used_mib = g.last_reading.load(Ordering::Relaxed) / (1024 * 1024),
            soft_limit_mib = soft / (1024 * 1024),
            hard_limit_mib = hard / (1024 * 1024),
            "memory_limiter: measuring"
        );
        let weak = Arc::downgrade(&g);
        let interval = cfg.check_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(g) => g.check(),
                    None => return,
                }
            }
        });
        Ok(g)
    }

    fn check(&self) {
        let used = (self.probe)();
        self.last_reading.store(used, Ordering::Relaxed);
        let was = self.over.load(Ordering::Relaxed);
        let over = used > self.soft_limit;
        if over != was {
            if over {
                tracing::warn!(
                    measure = self.measure.name(),
                    used_mib = used / (1024 * 1024),
                    soft_limit_mib = self.soft_limit / (1024 * 1024),
                    "memory_limiter: memory above the soft limit, refusing data"
                );
            } else {
                tracing::info!(
                    measure = self.measure.name(),
                    used_mib = used / (1024 * 1024),
                    "memory_limiter: memory back below the soft limit, accepting data"
                );
            }
        }
        self.over.store(over, Ordering::Relaxed);
    }

    pub fn is_over(&self) -> bool {
        self.over.load(Ordering::Relaxed)
    }
}

pub struct MemoryLimiter<T> {
    gauge: Arc<MemoryGauge>,
    next: Arc<dyn Consumer<T>>,
}

impl<T: crate::pipeline::signal::Signal> MemoryLimiter<T> {
    pub fn new(gauge: Arc<MemoryGauge>, next: Arc<dyn Consumer<T>>) -> Self {
        Self { gauge, next }
    }
}

#[async_trait::async_trait]
impl<T: crate::pipeline::signal::Signal> Consumer<T> for MemoryLimiter<T> {
    async fn consume(&self, batch: Vec<T>) -> Result<(), ConsumeError> {
        self.admit()?;
        self.next.consume(batch).await
    }

    async fn consume_encoded(
        &self,
        batch: crate::pipeline::wire::Encoded<T>,
    ) -> Result<(), ConsumeError> {
        self.admit()?;
        self.next.consume_encoded(batch).await
    }
}

impl<T> MemoryLimiter<T> {
    /// Refuses (retryably) while the measured memory is above the soft limit.
    fn admit(&self) -> Result<(), ConsumeError> {
        if self.gauge.is_over() {
            return Err(ConsumeError::Refused(format!(
                "memory usage ({}) {} MiB is above the memory_limiter soft limit of {} MiB",
                self.gauge.measure.name(),
                self.gauge.last_reading.load(Ordering::Relaxed) / (1024 * 1024),
                self.gauge.soft_limit / (1024 * 1024)
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "jemalloc")]
    #[test]
    fn heap_is_measured_with_jemalloc() {
        let probe = probe_for(Measure::Heap).expect("jemalloc statistics");
        let before = probe();
        let big = vec![1u8; 64 * 1024 * 1024];
        let during = probe();
        drop(big);
        assert!(during >= before + 60 * 1024 * 1024, "{before} → {during}");
        assert!(probe() < during);
    }

    #[cfg(not(feature = "jemalloc"))]
    #[test]
    fn heap_without_jemalloc_refuses_to_start() {
        let e = probe_for(Measure::Heap).err().expect("no heap statistics");
        assert!(e.contains("jemalloc") && e.contains("measure: heap"), "{e}");
    }

    #[tokio::test]
    async fn start_fails_with_the_reason_when_the_measure_is_unavailable() {
        let cfg = MemoryLimiterConfig {
            measure: Measure::Cgroup,
            limit_mib: 100,
            ..Default::default()
        };
        match MemoryGauge::start(&cfg, None) {
            Ok(_) => assert!(measure::Cgroup::current().is_some()),
            Err(e) => {
                assert!(measure::Cgroup::current().is_none());
                assert!(e.contains("cgroup v2"), "{e}");
            }
        }
        // An injected probe needs no platform support.
        let g = MemoryGauge::start(&cfg, Some(Arc::new(|| 200 * 1024 * 1024))).unwrap();
        assert!(g.is_over());
    }
}
