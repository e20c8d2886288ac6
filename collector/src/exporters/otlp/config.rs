//! Settings shared by the `otlp` (gRPC) and `otlphttp` exporters.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::component::FieldError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    pub enabled: bool,
    #[serde(deserialize_with = "crate::component::duration::deserialize")]
    pub initial_interval: Duration,
    #[serde(deserialize_with = "crate::component::duration::deserialize")]
    pub max_interval: Duration,
    /// Give up on a batch after retrying this long (0 = retry forever, bounded by the queue).
    #[serde(deserialize_with = "crate::component::duration::deserialize")]
    pub max_elapsed_time: Duration,
    pub multiplier: f64,
    pub randomization_factor: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            initial_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(30),
            max_elapsed_time: Duration::from_secs(300),
            multiplier: 1.5,
            randomization_factor: 0.5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    pub enabled: bool,
    pub num_consumers: usize,
    /// Maximum batches waiting to be sent; beyond it new data is refused (retryable).
    pub queue_size: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            num_consumers: 10,
            queue_size: 1000,
        }
    }
}

/// Only plaintext is built in: `insecure: true` (or an `http://` endpoint).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub insecure: bool,
    /// Only `false`: there is no TLS, so no certificate to verify (refused in `check_tls`).
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpExporterConfig {
    /// `host:port` or `http://host:port`.
    pub endpoint: String,
    pub tls: Option<TlsConfig>,
    pub headers: BTreeMap<String, String>,
    /// `gzip` (default) or `none`.
    pub compression: Option<String>,
    #[serde(deserialize_with = "crate::component::duration::deserialize_opt")]
    pub timeout: Option<Duration>,
    pub retry_on_failure: RetryConfig,
    pub sending_queue: QueueConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpHttpExporterConfig {
    /// Base URL; `/v1/traces`, `/v1/metrics`, `/v1/logs` are appended.
    pub endpoint: String,
    pub traces_endpoint: Option<String>,
    pub metrics_endpoint: Option<String>,
    pub logs_endpoint: Option<String>,
    /// `proto` (default) or `json`.
    pub encoding: Option<String>,
    pub tls: Option<TlsConfig>,
    pub headers: BTreeMap<String, String>,
    pub compression: Option<String>,
    #[serde(deserialize_with = "crate::component::duration::deserialize_opt")]
    pub timeout: Option<Duration>,
    pub retry_on_failure: RetryConfig,
    pub sending_queue: QueueConfig,
}

fn check_common(
    compression: &Option<String>,
    retry: &RetryConfig,
    queue: &QueueConfig,
) -> Result<(), FieldError> {
    match compression.as_deref() {
        None | Some("gzip" | "none" | "") => {}
        Some(other) => {
            return Err(FieldError::new(
                "compression",
                format!("unsupported compression `{other}`; expected `gzip` or `none`"),
            ));
        }
    }
    if retry.enabled {
        if retry.initial_interval.is_zero() {
            return Err(FieldError::new(
                "retry_on_failure.initial_interval",
                "must be greater than 0",
            ));
        }
        if retry.multiplier < 1.0 {
            return Err(FieldError::new(
                "retry_on_failure.multiplier",
                "must be at least 1.0",
            ));
        }
        if !(0.0..=1.0).contains(&retry.randomization_factor) {
            return Err(FieldError::new(
                "retry_on_failure.randomization_factor",
                "must be between 0 and 1",
            ));
        }
    }
    if queue.enabled {
        if queue.queue_size == 0 {
            return Err(FieldError::new(
                "sending_queue.queue_size",
                "must be at least 1",
            ));
        }
        if queue.num_consumers == 0 {
            return Err(FieldError::new(
                "sending_queue.num_consumers",
                "must be at least 1",
            ));
        }
    }
    Ok(())
}

fn check_tls(endpoint: &str, tls: &Option<TlsConfig>) -> Result<(), FieldError> {
    if endpoint.starts_with("https://") {
        return Err(FieldError::new(
            "endpoint",
            "TLS is not built into tracelab's collector; use an http:// endpoint or `tls: {insecure: true}`",
        ));
    }
    if let Some(t) = tls
        && t.insecure_skip_verify
    {
        return Err(FieldError::new(
            "tls.insecure_skip_verify",
            "`insecure_skip_verify: true` has no effect: TLS is not built into tracelab's collector \
             (plaintext only), so there is no server certificate to verify; remove the key",
        ));
    }
    if let Some(t) = tls
        && !t.insecure
        && !endpoint.starts_with("http://")
    {
        return Err(FieldError::new(
            "tls.insecure",
            "TLS is not built into tracelab's collector; set `insecure: true`",
        ));
    }
    Ok(())
}

impl OtlpExporterConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.endpoint.is_empty() {
            return Err(FieldError::new(
                "endpoint",
                "required: host:port of the OTLP/gRPC receiver, e.g. tempo:4317",
            ));
        }
        let hostport = self
            .endpoint
            .trim_start_matches("http://")
            .trim_end_matches('/');
        crate::component::endpoint::resolve_endpoint(hostport)
            .map_err(|m| FieldError::new("endpoint", m))?;
        check_tls(&self.endpoint, &self.tls)?;
        check_common(
            &self.compression,
            &self.retry_on_failure,
            &self.sending_queue,
        )
    }

    pub fn url(&self) -> String {
        if self.endpoint.starts_with("http://") {
            self.endpoint.clone()
        } else {
            format!("http://{}", self.endpoint)
        }
    }
}

impl OtlpHttpExporterConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        let any_signal = self.traces_endpoint.is_some()
            || self.metrics_endpoint.is_some()
            || self.logs_endpoint.is_some();
        if self.endpoint.is_empty() && !any_signal {
            return Err(FieldError::new(
                "endpoint",
                "required: base URL of the OTLP/HTTP receiver, e.g. http://collector:4318",
            ));
        }
        for (field, url) in [
            ("endpoint", Some(&self.endpoint)),
            ("traces_endpoint", self.traces_endpoint.as_ref()),
            ("metrics_endpoint", self.metrics_endpoint.as_ref()),
            ("logs_endpoint", self.logs_endpoint.as_ref()),
        ] {
            if let Some(u) = url
                && !u.is_empty()
            {
                if !u.starts_with("http://") && !u.starts_with("https://") {
                    return Err(FieldError::new(
                        field,
                        format!("`{u}` is not a URL; expected http://host:port"),
                    ));
                }
                check_tls(u, &self.tls).map_err(|e| FieldError::new(field, e.message))?;
            }
        }
        match self.encoding.as_deref() {
            None | Some("proto" | "json") => {}
            Some(other) => {
                return Err(FieldError::new(
                    "encoding",
                    format!("unsupported encoding `{other}`; expected `proto` or `json`"),
                ));
            }
        }
        check_common(
            &self.compression,
            &self.retry_on_failure,
            &self.sending_queue,
        )
    }

    pub fn url_for(&self, signal: crate::component::SignalKind) -> String {
        use crate::component::SignalKind::*;
        let explicit = match signal {
            Traces => &self.traces_endpoint,
            Metrics => &self.metrics_endpoint,
            Logs => &self.logs_endpoint,
        };
        match explicit {
            Some(u) => u.clone(),
            None => format!(
                "{}/v1/{}",
                self.endpoint.trim_end_matches('/'),
                signal.as_str()
            ),
        }
    }
}
