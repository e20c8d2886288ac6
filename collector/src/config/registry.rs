//! The component registry: which `type` names exist for receivers, processors, exporters,
//! connectors and extensions, how each one's settings are parsed, and which signals it supports.

pub use crate::component::endpoint::{check_listen, listen_addr, resolve_endpoint};
use serde_json::Value;

use super::{FieldError, SignalKind, parse_component};
use crate::connectors::spanmetrics::SpanMetricsConfig;
use crate::exporters::debug::DebugExporterConfig;
use crate::exporters::file::FileExporterConfig;
use crate::exporters::loadbalancing::LoadBalancingExporterConfig;
use crate::exporters::otlp::{OtlpExporterConfig, OtlpHttpExporterConfig};
use crate::exporters::prometheus::PrometheusExporterConfig;
use crate::exporters::tracelab::TracelabExporterConfig;
use crate::extensions::health_check::HealthCheckConfig;
use crate::processors::attributes::AttributesConfig;
use crate::processors::batch::BatchConfig;
use crate::processors::memory_limiter::MemoryLimiterConfig;
use crate::processors::probabilistic_sampler::ProbabilisticSamplerConfig;
use crate::processors::tail_sampling::TailSamplingConfig;
use crate::receivers::otlp::OtlpReceiverConfig;

/// Why one component's settings did not parse.
pub enum ParseError {
    /// The `type` is not registered; carries the list of valid types.
    UnknownType(&'static str),
    Field(FieldError),
}

impl From<FieldError> for ParseError {
    fn from(e: FieldError) -> Self {
        Self::Field(e)
    }
}

#[derive(Debug, Clone)]
pub enum ReceiverConfig {
    Otlp(OtlpReceiverConfig),
}

pub(crate) fn parse_receiver(ty: &str, v: Value) -> Result<ReceiverConfig, ParseError> {
    Ok(match ty {
        "otlp" => ReceiverConfig::Otlp(parse_component(v, OtlpReceiverConfig::validate)?),
        _ => return Err(ParseError::UnknownType("otlp")),
    })
}

#[derive(Debug, Clone)]
pub enum ProcessorConfig {
    Batch(BatchConfig),
    MemoryLimiter(MemoryLimiterConfig),
    Attributes(AttributesConfig),
    ProbabilisticSampler(ProbabilisticSamplerConfig),
    TailSampling(TailSamplingConfig),
}

impl ProcessorConfig {
    pub fn supports(&self, signal: SignalKind) -> bool {
        match self {
            Self::TailSampling(_) => signal == SignalKind::Traces,
            _ => true,
        }
    }
}

pub(crate) fn parse_processor(ty: &str, v: Value) -> Result<ProcessorConfig, ParseError> {
    Ok(match ty {
        "batch" => ProcessorConfig::Batch(parse_component(v, BatchConfig::validate)?),
        "memory_limiter" => {
            ProcessorConfig::MemoryLimiter(parse_component(v, MemoryLimiterConfig::validate)?)
        }
        "attributes" => {
            ProcessorConfig::Attributes(parse_component(v, AttributesConfig::validate)?)
        }
        "probabilistic_sampler" => ProcessorConfig::ProbabilisticSampler(parse_component(
            v,
            ProbabilisticSamplerConfig::validate,
        )?),
        "tail_sampling" => {
            ProcessorConfig::TailSampling(parse_component(v, TailSamplingConfig::validate)?)
        }
        _ => {
            return Err(ParseError::UnknownType(
                "attributes, batch, memory_limiter, probabilistic_sampler, tail_sampling",
            ));
        }
    })
}

#[derive(Debug, Clone)]
pub enum ExporterConfig {
    /// `debug`, or its old name `logging`.
    Debug(DebugExporterConfig),
    File(FileExporterConfig),
    /// Routes by trace id (or service) to backends found by a resolver (traces and logs).
    LoadBalancing(LoadBalancingExporterConfig),
    Otlp(OtlpExporterConfig),
    OtlpHttp(OtlpHttpExporterConfig),
    Prometheus(PrometheusExporterConfig),
    /// Drops everything (benchmarks, tests).
    Nop,
    /// The embedded trace store (traces and logs) and its query API.
    Tracelab(TracelabExporterConfig),
}

impl ExporterConfig {
    pub fn supports(&self, signal: SignalKind) -> bool {
        match self {
            Self::Prometheus(_) => signal == SignalKind::Metrics,
            Self::Tracelab(_) | Self::LoadBalancing(_) => signal != SignalKind::Metrics,
            _ => true,
        }
    }
}

pub(crate) fn parse_exporter(ty: &str, v: Value) -> Result<ExporterConfig, ParseError> {
    Ok(match ty {
        "debug" => ExporterConfig::Debug(parse_component(v, DebugExporterConfig::validate)?),
        "logging" => ExporterConfig::Debug(
            parse_component(v, DebugExporterConfig::validate_logging)
                .map(DebugExporterConfig::from_logging)?,
        ),
        "file" => ExporterConfig::File(parse_component(v, FileExporterConfig::validate)?),
        "loadbalancing" => ExporterConfig::LoadBalancing(parse_component(
            v,
            LoadBalancingExporterConfig::validate,
        )?),
        "otlp" | "otlp_grpc" => {
            ExporterConfig::Otlp(parse_component(v, OtlpExporterConfig::validate)?)
        }
        "otlphttp" | "otlp_http" => {
            ExporterConfig::OtlpHttp(parse_component(v, OtlpHttpExporterConfig::validate)?)
        }
        "prometheus" => {
            ExporterConfig::Prometheus(parse_component(v, PrometheusExporterConfig::validate)?)
        }
        "nop" => {
            parse_component::<NoSettings>(v, |_| Ok(()))?;
            ExporterConfig::Nop
        }
        "tracelab" => {
            ExporterConfig::Tracelab(parse_component(v, TracelabExporterConfig::validate)?)
        }
        _ => {
            return Err(ParseError::UnknownType(
                "debug, file, loadbalancing, logging, nop, otlp, otlphttp, prometheus, tracelab",
            ));
        }
    })
}

/// A component without settings: only `{}` or nothing is accepted.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoSettings {}

#[derive(Debug, Clone)]
pub enum ConnectorConfig {
    /// traces → metrics.
    SpanMetrics(Box<SpanMetricsConfig>),
    /// Passes data of one signal unchanged from one pipeline to another.
    Forward,
}

impl ConnectorConfig {
    /// Can it sit at the end of a pipeline of `signal`?
    pub fn accepts(&self, signal: SignalKind) -> bool {
        match self {
            Self::SpanMetrics(_) => signal == SignalKind::Traces,
            Self::Forward => true,
        }
    }

    /// Can it feed a pipeline of `signal`?
    pub fn input_signals_for_output(&self, signal: SignalKind) -> bool {
        match self {
            Self::SpanMetrics(_) => signal == SignalKind::Metrics,
            Self::Forward => true,
        }
    }

    pub fn describe_outputs(&self) -> &'static str {
        match self {
            Self::SpanMetrics(_) => "metrics",
            Self::Forward => "traces, metrics, logs",
        }
    }
}

pub(crate) fn parse_connector(ty: &str, v: Value) -> Result<ConnectorConfig, ParseError> {
    Ok(match ty {
        "spanmetrics" => {
            ConnectorConfig::SpanMetrics(Box::new(parse_component(v, SpanMetricsConfig::validate)?))
        }
        "forward" => {
            parse_component::<NoSettings>(v, |_| Ok(()))?;
            ConnectorConfig::Forward
        }
        _ => return Err(ParseError::UnknownType("forward, spanmetrics")),
    })
}

#[derive(Debug, Clone)]
pub enum ExtensionConfig {
    HealthCheck(HealthCheckConfig),
}

pub(crate) fn parse_extension(ty: &str, v: Value) -> Result<ExtensionConfig, ParseError> {
    Ok(match ty {
        "health_check" => {
            ExtensionConfig::HealthCheck(parse_component(v, HealthCheckConfig::validate)?)
        }
        _ => return Err(ParseError::UnknownType("health_check")),
    })
}
