//! `memory_limiter` processor: measures the process memory (RSS from `/proc/self/statm`) every
//! `check_interval`; above the soft limit (`limit - spike`) it refuses new data with
//! `ConsumeError::Refused` (gRPC RESOURCE_EXHAUSTED / HTTP 503 + Retry-After at the receiver),
//! so senders retry later. Data already accepted is never dropped here.
//!
//! One [`MemoryGauge`] per processor id is shared by every pipeline using it; tests inject the
//! memory reading through [`MemoryProbe`].

mod config;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use config::MemoryLimiterConfig;

use crate::pipeline::{ConsumeError, Consumer};

/// Reads the current memory use in bytes.
pub type MemoryProbe = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The process resident set size, from `/proc/self/statm` (0 where unavailable).
pub fn process_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// Total machine memory from `/proc/meminfo` (for `limit_percentage`).
pub fn total_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// The shared measurement: updated by a background task every `check_interval`.
pub struct MemoryGauge {
    pub hard_limit: u64,
    pub soft_limit: u64,
    pub last_reading: AtomicU64,
    over: AtomicBool,
    probe: MemoryProbe,
}

impl MemoryGauge {
    pub fn start(cfg: &MemoryLimiterConfig, probe: Option<MemoryProbe>) -> Arc<Self> {
        let (hard, soft) = cfg.limits(total_memory_bytes());
        let probe: MemoryProbe = probe.unwrap_or_else(|| Arc::new(process_rss_bytes));
        let g = Arc::new(Self {
            hard_limit: hard,
            soft_limit: soft,
            last_reading: AtomicU64::new(0),
            over: AtomicBool::new(false),
            probe,
        });
        g.check();
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
        g
    }

    fn check(&self) {
        let used = (self.probe)();
        self.last_reading.store(used, Ordering::Relaxed);
        let was = self.over.load(Ordering::Relaxed);
        let over = used > self.soft_limit;
        if over != was {
            if over {
                tracing::warn!(
                    used_mib = used / (1024 * 1024),
                    soft_limit_mib = self.soft_limit / (1024 * 1024),
                    "memory_limiter: memory above the soft limit, refusing data"
                );
            } else {
                tracing::info!(
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

impl<T: Send + 'static> MemoryLimiter<T> {
    pub fn new(gauge: Arc<MemoryGauge>, next: Arc<dyn Consumer<T>>) -> Self {
        Self { gauge, next }
    }
}

#[async_trait::async_trait]
impl<T: Send + 'static> Consumer<T> for MemoryLimiter<T> {
    async fn consume(&self, batch: Vec<T>) -> Result<(), ConsumeError> {
        if self.gauge.is_over() {
            return Err(ConsumeError::Refused(format!(
                "memory usage {} MiB is above the memory_limiter soft limit of {} MiB",
                self.gauge.last_reading.load(Ordering::Relaxed) / (1024 * 1024),
                self.gauge.soft_limit / (1024 * 1024)
            )));
        }
        self.next.consume(batch).await
    }
}
