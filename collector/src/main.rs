//! The `collector` binary: `collector --config FILE` runs (`--config` may be repeated: the files
//! are merged in order), `collector validate --config FILE` checks a config and exits non-zero with every problem found, `collector --print-config`
//! prints the validated config and every environment variable the process reads as JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "collector",
    version,
    about = "tracelab's OpenTelemetry-compatible collector"
)]
struct Cli {
    /// Collector config (OpenTelemetry Collector YAML schema). Repeat to merge several files in
    /// order, as the OpenTelemetry Collector does: mappings merge key by key, a later file's
    /// scalar or list replaces the earlier value. COLLECTOR_CONFIG holds one file (no list).
    #[arg(
        long,
        short,
        env = "COLLECTOR_CONFIG",
        default_value = "collector/config/default.yaml",
        action = ArgAction::Append,
        global = true
    )]
    config: Vec<PathBuf>,
    /// Load and validate the config as a run would, print it and every environment variable the
    /// collector reads as JSON, and exit (non-zero on an invalid config).
    #[arg(long, global = true)]
    print_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Check the config and exit (0 = valid).
    Validate,
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    if cli.print_config {
        let source = match matches.value_source("config") {
            Some(ValueSource::CommandLine) => "flag",
            Some(ValueSource::EnvVariable) => "env",
            _ => "default",
        };
        return print_config(&cli.config, source);
    }
    let cfg = match collector::load_files(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if matches!(cli.command, Some(Command::Validate)) {
        for w in &cfg.warnings {
            eprintln!("warning: {w}");
        }
        println!(
            "{}: valid ({} pipelines: {})",
            cfg.source,
            cfg.pipelines.len(),
            cfg.pipelines
                .iter()
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(cfg))
}

fn print_config(paths: &[PathBuf], source: &'static str) -> ExitCode {
    match collector::settings::print_config(paths, source, &|k| std::env::var(k).ok()) {
        Ok(p) => match serde_json::to_string_pretty(&p) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot encode the config as JSON: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

async fn run(cfg: collector::LoadedConfig) -> ExitCode {
    let _telemetry = init_telemetry(&cfg.telemetry.logs);
    for w in &cfg.warnings {
        tracing::warn!(file = %w.file, line = w.line, path = %w.path, "{}", w.message);
    }
    let collector = match collector::Collector::start(cfg).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "collector failed to start");
            eprintln!("collector failed to start: {e}");
            return ExitCode::FAILURE;
        }
    };
    shutdown_signal().await;
    tracing::info!("shutting down");
    collector.shutdown().await;
    ExitCode::SUCCESS
}

/// The collector's own telemetry through the lead's kit: logs on stdout (JSON, or console lines
/// with `service.telemetry.logs.encoding: console`) filtered by `RUST_LOG` when it is set
/// (non-empty), else by `service.telemetry.logs.level` (default info); its own OTLP export
/// only when OTEL_EXPORTER_OTLP_ENDPOINT is set explicitly (the default endpoint would be
/// localhost:4317 — the collector itself — and every export would produce more telemetry).
fn init_telemetry(logs: &collector::config::SelfLogsConfig) -> Option<telemetry::TelemetryGuard> {
    let mut tc =
        telemetry::TelemetryConfig::from_env("tracelab-collector", env!("CARGO_PKG_VERSION"));
    if tc.endpoint.is_none() {
        tc.sdk_disabled = true;
    }
    let rust_log_set = std::env::var("RUST_LOG").is_ok_and(|v| !v.trim().is_empty());
    if let Some(level) = &logs.level
        && !rust_log_set
    {
        tc.log_filter = level.to_ascii_lowercase();
    }
    tc.stdout_console = logs.encoding.as_deref() == Some("console");
    match telemetry::init_with(tc) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("telemetry init failed: {e}");
            None
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
