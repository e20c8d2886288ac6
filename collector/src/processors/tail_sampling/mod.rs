//! `tail_sampling` processor: decides per trace, after `decision_wait`, whether to keep it, using
//! OpenTelemetry-Collector-contrib policies. [`TailSampler`] is the pure core (injected clock);
//! [`TailSamplingProcessor`] wraps it as a pipeline [`Consumer`] driven by a tokio ticker.

pub mod config;
pub mod policy;
pub mod sampler;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use tokio::task::JoinHandle;

pub use config::{PolicyConfig, PolicyType, TailSamplingConfig};
pub use sampler::{
    COMPOSITE_POLICY_ATTRIBUTE, Clock, ManualClock, POLICY_ATTRIBUTE, SystemClock, TailSampler,
};

use crate::component::FieldError;
use crate::pipeline::{ComponentCounters, ConsumeError, Consumer};
use crate::sampling::{DecisionQueue, SamplingStats};

struct Inner {
    core: Mutex<TailSampler>,
    next: Arc<dyn Consumer<ResourceSpans>>,
    counters: ComponentCounters,
    /// The component's self-metrics, when wired into a pipeline: `dropped` counts there too.
    component: OnceLock<Arc<ComponentCounters>>,
}

impl Inner {
    fn with_core<R>(&self, f: impl FnOnce(&mut TailSampler) -> R) -> R {
        // A panic while holding the lock leaves consistent-enough state (maps only); keep going.
        let mut g = self.core.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }

    /// Hands decided (kept) traces on. Their spans were accepted earlier, so a downstream failure
    /// is never returned to a caller (a retry would store them twice): it is logged and counted
    /// as dropped.
    async fn forward(&self, out: Vec<ResourceSpans>) {
        if out.is_empty() {
            return;
        }
        let n = span_count(&out);
        match self.next.consume(out).await {
            Ok(()) => ComponentCounters::add(&self.counters.sent, n),
            Err(e) => {
                ComponentCounters::add(&self.counters.dropped, n);
                if let Some(c) = self.component.get() {
                    ComponentCounters::add(&c.dropped, n);
                }
                tracing::error!(
                    spans = n,
                    error = %e,
                    "tail_sampling: dropping sampled spans, the next component failed"
                );
            }
        }
    }
}

fn span_count(batch: &[ResourceSpans]) -> u64 {
    batch
        .iter()
        .flat_map(|rs| rs.scope_spans.iter())
        .map(|ss| ss.spans.len() as u64)
        .sum()
}

/// The processor: buffers traces, decides on a ticker, forwards kept traces to `next`.
pub struct TailSamplingProcessor {
    inner: Arc<Inner>,
    ticker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for TailSamplingProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailSamplingProcessor")
            .finish_non_exhaustive()
    }
}

impl TailSamplingProcessor {
    /// Builds the processor with the system clock and starts its ticker on the current tokio runtime.
    /// Decisions are counted in `stats` and queued into each of `persist` (the stores downstream).
    pub fn new(
        cfg: TailSamplingConfig,
        next: Arc<dyn Consumer<ResourceSpans>>,
        stats: Arc<SamplingStats>,
        persist: Vec<Arc<DecisionQueue>>,
    ) -> Result<Self, FieldError> {
        Self::with_clock(cfg, next, stats, persist, Arc::new(SystemClock))
    }

    /// As [`new`](Self::new) with an injected clock (the ticker still polls in real time; it only
    /// asks the core what is due).
    pub fn with_clock(
        cfg: TailSamplingConfig,
        next: Arc<dyn Consumer<ResourceSpans>>,
        stats: Arc<SamplingStats>,
        persist: Vec<Arc<DecisionQueue>>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, FieldError> {
        let core = TailSampler::new(&cfg, stats, persist, clock)?;
        let inner = Arc::new(Inner {
            core: Mutex::new(core),
            next,
            counters: ComponentCounters::default(),
            component: OnceLock::new(),
        });
        // Deciding late by up to a tenth of decision_wait is invisible; polling more often is waste.
        let period =
            (cfg.decision_wait / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let ticker = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let weak = Arc::downgrade(&inner);
            rt.spawn(async move {
                let mut iv = tokio::time::interval(period);
                iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    iv.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    let out = inner.with_core(TailSampler::tick);
                    inner.forward(out).await;
                }
            })
        });
        Ok(Self {
            inner,
            ticker: Mutex::new(ticker),
        })
    }

    /// received / sent / dropped span counts of this instance.
    pub fn counters(&self) -> &ComponentCounters {
        &self.inner.counters
    }

    /// Also counts dropped spans into the component's self-metrics (the pipeline builder's).
    pub fn count_dropped_into(&self, counters: Arc<ComponentCounters>) {
        let _ = self.inner.component.set(counters);
    }

    /// Undecided traces held right now.
    pub fn pending_traces(&self) -> usize {
        self.inner.with_core(|c| c.pending_traces())
    }
}

impl Drop for TailSamplingProcessor {
    fn drop(&mut self) {
        if let Some(h) = self.ticker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            h.abort();
        }
    }
}

#[async_trait::async_trait]
impl Consumer<ResourceSpans> for TailSamplingProcessor {
    async fn consume(&self, batch: Vec<ResourceSpans>) -> Result<(), ConsumeError> {
        ComponentCounters::add(&self.inner.counters.received, span_count(&batch));
        let out = self.inner.with_core(|c| c.ingest(batch));
        // Accepted spans are buffered: the caller gets its success whatever happens downstream.
        self.inner.forward(out).await;
        Ok(())
    }

    /// Stops the ticker and decides every pending trace, forwarding the kept ones.
    async fn shutdown(&self) -> Result<(), ConsumeError> {
        if let Some(h) = self.ticker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            h.abort();
        }
        let out = self.inner.with_core(TailSampler::flush);
        self.inner.forward(out).await;
        Ok(())
    }
}
