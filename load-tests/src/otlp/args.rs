//! The flags of `loadgen otlp`, `loadgen sink` and `loadgen bench-collector`, turned into the
//! library's configurations.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::bench::BenchConfig;
use super::generator::{GenConfig, Protocol, Rate};
use super::payload::Shape;
use super::sink::{CountWith, SinkConfig};
use crate::cli::parse_duration;

/// The shape of each request.
#[derive(Args, Debug, Clone)]
pub struct ShapeArgs {
    #[arg(long, default_value_t = 100)]
    pub spans_per_request: usize,
    /// Consecutive spans sharing a trace id (a trace may continue in the next request).
    #[arg(long, default_value_t = 10)]
    pub spans_per_trace: usize,
    /// String attributes per span.
    #[arg(long, default_value_t = 4)]
    pub attributes: usize,
}

impl ShapeArgs {
    pub fn shape(&self) -> Result<Shape, String> {
        if self.spans_per_request == 0 || self.spans_per_trace == 0 {
            return Err("--spans-per-request and --spans-per-trace must be at least 1".into());
        }
        if self.spans_per_request > 100_000 || self.attributes > 1_000 {
            return Err("at most 100000 spans per request and 1000 attributes per span".into());
        }
        Ok(Shape {
            spans_per_request: self.spans_per_request,
            spans_per_trace: self.spans_per_trace,
            attributes: self.attributes,
        })
    }
}

#[derive(Args, Debug, Clone)]
pub struct OtlpArgs {
    /// The receiver's address: its OTLP/HTTP port with `--protocol http`, its gRPC port with grpc.
    #[arg(long, default_value = "127.0.0.1:4318")]
    pub target: SocketAddr,
    #[arg(long, value_enum, default_value = "http")]
    pub protocol: Protocol,
    /// Spans per second (`10000`, `10k`), or `max`: back to back on every connection.
    #[arg(long, default_value = "10k")]
    pub rate: Rate,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Concurrent connections, one request in flight on each.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// gzip request bodies.
    #[arg(long)]
    pub gzip: bool,
    /// Per request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Stop after this many requests even if the duration has not passed.
    #[arg(long, default_value_t = 10_000_000)]
    pub max_requests: u64,
}

impl OtlpArgs {
    pub fn config(&self) -> Result<GenConfig, String> {
        if self.connections == 0 || self.connections > 4096 {
            return Err("--connections must be in 1..=4096".into());
        }
        Ok(GenConfig {
            connections: self.connections,
            rate: self.rate,
            duration: self.duration,
            shape: self.shape.shape()?,
            gzip: self.gzip,
            timeout: self.timeout,
            max_requests: self.max_requests,
            ..GenConfig::new(self.target, self.protocol)
        })
    }
}

#[derive(Args, Debug, Clone)]
pub struct SinkArgs {
    /// OTLP/HTTP listen address (`/v1/traces`).
    #[arg(long, default_value = "127.0.0.1:4318")]
    pub http: SocketAddr,
    /// OTLP/gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:4317")]
    pub grpc: SocketAddr,
    /// How spans are counted.
    #[arg(long, value_enum, default_value = "walk")]
    pub count: CountWith,
    /// Print the totals this often (and once more on exit).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub every: Duration,
    /// Stop after this long (otherwise at Ctrl-C).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

impl SinkArgs {
    pub fn config(&self) -> SinkConfig {
        SinkConfig {
            http: Some(self.http),
            grpc: Some(self.grpc),
            count: self.count,
            record_trace_ids: false,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// tracelab's collector binary.
    #[arg(
        long,
        env = "BENCH_COLLECTOR",
        default_value = "target/release/collector"
    )]
    pub collector: PathBuf,
    /// rotel's `rotel-agent` binary; without it only tracelab runs.
    #[arg(long, env = "BENCH_ROTEL")]
    pub rotel: Option<PathBuf>,
    /// Load window of each run.
    #[arg(long, env = "BENCH_DURATION", default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,
    /// How many times each cell's A B B A sequence runs.
    #[arg(long, env = "BENCH_REPETITIONS", default_value_t = 1)]
    pub repetitions: usize,
    /// Only cells whose name contains one of these (comma-separated): p0, p1-grpc, http-max,
    /// full, p0-http-10k...
    #[arg(long, env = "BENCH_ONLY", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Fixed rates (spans/s), comma-separated; `max` is always added for p0 and p1.
    #[arg(
        long,
        env = "BENCH_RATES",
        value_delimiter = ',',
        default_value = "10k,100k"
    )]
    pub rates: Vec<Rate>,
    #[command(flatten)]
    pub shape: ShapeArgs,
    /// Connections at fixed rates.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Connections at `max`.
    #[arg(long, default_value_t = 16)]
    pub max_connections: usize,
    /// The CPU the collectors are pinned to (`taskset -c`); `none` to leave them unpinned.
    #[arg(long, env = "BENCH_COLLECTOR_CPU", default_value = "0")]
    pub collector_cpu: String,
    /// How long p1 may take after the load to deliver every span.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// report.md, report.json and each run's logs.
    #[arg(long, default_value = "target/bench-collector")]
    pub out: PathBuf,
}

impl BenchArgs {
    pub fn config(&self) -> Result<BenchConfig, String> {
        let collector_cpu = match self.collector_cpu.as_str() {
            "none" | "" => None,
            n => Some(
                n.parse()
                    .map_err(|_| format!("--collector-cpu `{n}`: a CPU number or `none`"))?,
            ),
        };
        if !(1..=20).contains(&self.repetitions) {
            return Err("--repetitions must be in 1..=20".into());
        }
        if self.duration > Duration::from_secs(600) {
            return Err("--duration: at most 10 minutes per run".into());
        }
        if !(1..=4096).contains(&self.connections) || !(1..=4096).contains(&self.max_connections) {
            return Err("connections must be in 1..=4096".into());
        }
        Ok(BenchConfig {
            collector: self.collector.clone(),
            rotel: self.rotel.clone(),
            duration: self.duration,
            repetitions: self.repetitions,
            only: self.only.clone(),
            rates: self
                .rates
                .iter()
                .copied()
                .filter(|r| *r != Rate::Max)
                .collect(),
            shape: self.shape.shape()?,
            connections: self.connections,
            max_connections: self.max_connections,
            collector_cpu,
            drain_timeout: self.drain_timeout,
            out_dir: self.out.clone(),
        })
    }
}
