//! `debug` exporter (old name `logging`): logs what passes through it — a count per batch
//! (`basic`), one line per span / log record / metric (`normal`) or the full OTLP/JSON
//! (`detailed`).
//!
//! `sampling_initial` / `sampling_thereafter` sample the output as contrib's zap sampler does: in
//! every one-second window the first `sampling_initial` batches are logged, then every
//! `sampling_thereafter`-th (0: none); defaults 2 and 1 (everything logged), as in contrib.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::component::FieldError;
use crate::pipeline::signal::Signal;
use crate::pipeline::{ConsumeError, Consumer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verbosity {
    #[default]
    Basic,
    Normal,
    Detailed,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebugExporterConfig {
    pub verbosity: Verbosity,
    /// Batches logged per second before sampling starts (contrib's default: 2).
    pub sampling_initial: Option<u64>,
    /// After `sampling_initial` in a second, every this-many-th batch is logged (default 1 =
    /// all; 0 = none).
    pub sampling_thereafter: Option<u64>,
    /// Only for the old `logging` name: `debug|info|warn|error`, mapped onto `verbosity`.
    pub loglevel: Option<String>,
}

impl DebugExporterConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.loglevel.is_some() {
            return Err(FieldError::new(
                "loglevel",
                "`loglevel` belongs to the old `logging` exporter; use `verbosity: basic|normal|detailed`",
            ));
        }
        Ok(())
    }

    pub fn validate_logging(&self) -> Result<(), FieldError> {
        match self.loglevel.as_deref() {
            None | Some("debug" | "info" | "warn" | "error") => Ok(()),
            Some(other) => Err(FieldError::new(
                "loglevel",
                format!("unknown loglevel `{other}`; expected debug, info, warn or error"),
            )),
        }
    }

    /// The `logging` exporter's `loglevel: debug` meant detailed output.
    pub fn from_logging(mut self) -> Self {
        if self.loglevel.as_deref() == Some("debug") {
            self.verbosity = Verbosity::Detailed;
        }
        self
    }
}

pub struct DebugExporter {
    pub id: String,
    pub cfg: DebugExporterConfig,
    sampler: Sampler,
}

impl DebugExporter {
    pub fn new(id: String, cfg: DebugExporterConfig) -> Self {
        let sampler = Sampler::new(
            cfg.sampling_initial.unwrap_or(2),
            cfg.sampling_thereafter.unwrap_or(1),
        );
        Self { id, cfg, sampler }
    }
}

/// Zap's sampler (what contrib's debug exporter configures): per one-second tick, the first
/// `initial` entries pass, then every `thereafter`-th.
struct Sampler {
    initial: u64,
    thereafter: u64,
    window: Mutex<(Instant, u64)>,
}

impl Sampler {
    fn new(initial: u64, thereafter: u64) -> Self {
        Self {
            initial,
            thereafter,
            window: Mutex::new((Instant::now(), 0)),
        }
    }

    fn allow(&self, now: Instant) -> bool {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(w.0) >= Duration::from_secs(1) {
            *w = (now, 0);
        }
        w.1 += 1;
        let n = w.1;
        n <= self.initial
            || (self.thereafter > 0 && (n - self.initial).is_multiple_of(self.thereafter))
    }
}

#[async_trait::async_trait]
impl<T: Signal> Consumer<T> for DebugExporter
where
    T::Request: serde::Serialize,
{
    async fn consume(&self, batch: Vec<T>) -> Result<(), ConsumeError> {
        if !self.sampler.allow(Instant::now()) {
            return Ok(());
        }
        let items: usize = batch.iter().map(Signal::item_count).sum();
        let signal = T::KIND.as_str();
        tracing::info!(
            exporter = %self.id,
            signal,
            resources = batch.len(),
            items,
            "debug: {signal} received"
        );
        match self.cfg.verbosity {
            Verbosity::Basic => {}
            Verbosity::Normal => {
                for r in &batch {
                    tracing::info!(
                        exporter = %self.id,
                        service = crate::pipeline::signal::service_name(r.resource()).unwrap_or(""),
                        items = r.item_count(),
                        "debug: resource"
                    );
                }
            }
            Verbosity::Detailed => {
                let req = T::into_request(batch);
                let json = serde_json::to_string(&req).unwrap_or_default();
                tracing::info!(exporter = %self.id, otlp_json = %json, "debug: detailed");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_as_zap_initial_then_every_nth_per_second() {
        let t0 = Instant::now();
        let s = Sampler::new(2, 3);
        let got: Vec<bool> = (0..8).map(|_| s.allow(t0)).collect();
        // 1, 2 pass; then every 3rd after the initial: 5, 8.
        assert_eq!(got, [true, true, false, false, true, false, false, true]);
        // A new second starts over.
        assert!(s.allow(t0 + Duration::from_millis(1001)));
        let none = Sampler::new(1, 0);
        assert!(none.allow(t0));
        assert!(!none.allow(t0));
        assert!(!none.allow(t0));
        // Contrib's defaults (2, 1) log everything.
        let d = DebugExporter::new("debug".into(), DebugExporterConfig::default());
        assert!((0..100).all(|_| d.sampler.allow(t0)));
    }
}
