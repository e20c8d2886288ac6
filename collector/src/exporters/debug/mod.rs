//! `debug` exporter (old name `logging`): logs what passes through it — a count per batch
//! (`basic`), one line per span / log record / metric (`normal`) or the full OTLP/JSON
//! (`detailed`).

use serde::Deserialize;

use crate::config::FieldError;
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
    pub sampling_initial: Option<u64>,
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
}

#[async_trait::async_trait]
impl<T: Signal> Consumer<T> for DebugExporter
where
    T::Request: serde::Serialize,
{
    async fn consume(&self, batch: Vec<T>) -> Result<(), ConsumeError> {
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
