//! `loadgen run` and `loadgen sampling-lab`. Thin: the work is in the `loadgen` library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use loadgen::cli::{LoadArgs, OutputArgs};
use loadgen::plot::write_latency_svg;
use loadgen::{RunSummary, run};

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    version,
    about = "Checkout load for tracelab at a set arrival rate and scenario mix, and the sampling lab"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send POST /orders at a constant arrival rate with a seeded scenario mix; print status codes
    /// and latency percentiles per scenario; write a JSON summary and an SVG latency histogram.
    Run {
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        out: OutputArgs,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Run { load, out } => rt.block_on(run_cmd(load, out)),
    }
}

async fn run_cmd(load: LoadArgs, out: OutputArgs) -> ExitCode {
    let cfg = load.config();
    let output = match run(&cfg).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    let summary = RunSummary::new(&cfg, &output);
    print!("{}", summary.table());
    let mut ok = true;
    if let Some(path) = &out.summary {
        match write_json(path, &summary) {
            Ok(()) => println!("summary: {}", path.display()),
            Err(e) => {
                eprintln!("loadgen: {e}");
                ok = false;
            }
        }
    }
    let plot = out.plot_path("loadgen-latency.svg");
    let series: Vec<(String, &hdrhistogram::Histogram<u64>)> = output
        .recorder
        .by_scenario
        .iter()
        .map(|(s, t)| (s.name().to_string(), &t.latency))
        .collect();
    let title = format!(
        "loadgen: {} requests at {}/s, seed {}",
        summary.completed, summary.rate, summary.seed
    );
    match write_latency_svg(&plot, &title, &series) {
        Ok(()) => println!("latency histogram: {}", plot.display()),
        Err(e) => {
            eprintln!("loadgen: writing the plot: {e}");
            ok = false;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text + "\n").map_err(|e| format!("writing {}: {e}", path.display()))
}
