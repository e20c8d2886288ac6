//! tracelab collector: an OpenTelemetry-Collector-compatible pipeline of receivers, processors,
//! connectors and exporters, configured by YAML.
//!
//! Code tour: [`config`] (YAML schema, env substitution, validation with file/line/key path),
//! [`pipeline`] (consumer contract, fan-out, graph wiring, self-metrics), [`receivers`],
//! [`processors`], [`exporters`], [`connectors`], [`extensions`], and [`Collector`] (start,
//! bound addresses, ordered shutdown); [`settings`] backs `--print-config`.
pub mod alloc;
pub mod app;
pub mod component;
pub mod config;
pub mod connectors;
pub mod exporters;
pub mod extensions;
pub mod grpc_codec;
pub mod pipeline;
pub mod processors;
pub mod query;
pub mod receivers;
pub mod rpc_status;
pub mod sampling;
pub mod settings;
pub mod store;

pub use app::{Collector, StartError, StartOptions};
pub use config::{LoadedConfig, load_file, load_files, load_str};
