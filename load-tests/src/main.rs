//! `loadgen run`, `loadgen sampling-lab`, `loadgen otlp`, `loadgen sink`,
//! `loadgen bench-collector` and `loadgen bench-stack`. Thin: the work is in the `loadgen` library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use loadgen::cli::{LoadArgs, OutputArgs, parse_duration};
use loadgen::otlp::args::{BenchArgs, OtlpArgs, SinkArgs};
use loadgen::plot::{KeptBars, sampling_svg, write_latency_svg, write_svg};
use loadgen::sampling::{LabConfig, sampling_lab};
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
    /// Send the same kind of load to a collector running every sampling strategy side by side
    /// (`tracelab up --sampling lab`), then show what each kept: traces, spans, error and slow
    /// traces, bytes stored and storage per million requests.
    SamplingLab {
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        out: OutputArgs,
        /// The collector's query API.
        #[arg(long, env = "LOADGEN_QUERY", default_value = "http://127.0.0.1:16686")]
        query: String,
        /// A trace at least this long counts as slow (the lab's tail policy keeps traces over 1 s).
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        slow: std::time::Duration,
        /// How long to wait, after the last answer, for every tail sampler to decide.
        #[arg(long, default_value = "90s", value_parser = parse_duration)]
        settle_timeout: std::time::Duration,
    },
    /// Raw OTLP trace load: pre-encoded ExportTraceServiceRequests with fresh trace ids, over
    /// OTLP/HTTP protobuf or gRPC, at a span rate or `--rate max`; prints accepted, refused and
    /// failed requests and latency percentiles.
    Otlp(OtlpArgs),
    /// A counting OTLP trace receiver (OTLP/HTTP `/v1/traces` and gRPC, gzip-aware) that prints
    /// the requests and spans it received.
    Sink(SinkArgs),
    /// tracelab's collector against rotel: blackhole and batch → export pipelines over HTTP and
    /// gRPC at fixed rates and flat out, A B B A; writes report.md and report.json.
    BenchCollector(BenchArgs),
    /// What tracing costs the whole stack: fresh stacks with tracing off, head 10 % and 100 %;
    /// cold start to first trace, RSS, the highest rate at a p99 target, CPU per process
    /// (`make bench-stack`; writes target/bench-stack/report.md).
    BenchStack(loadgen::bench_stack::BenchArgs),
}

fn main() -> ExitCode {
    // `loadgen run --print-config`: the flags and variables read, as the services print theirs.
    let cli: Cli = service_kit::config::parse_with(&[]);
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
        Command::SamplingLab {
            load,
            out,
            query,
            slow,
            settle_timeout,
        } => rt.block_on(lab_cmd(
            LabConfig {
                run: load.config(),
                query,
                slow,
                settle_timeout,
            },
            out,
        )),
        Command::Otlp(args) => rt.block_on(otlp_cmd(args)),
        Command::Sink(args) => rt.block_on(sink_cmd(args)),
        Command::BenchCollector(args) => rt.block_on(bench_cmd(args)),
        Command::BenchStack(args) => rt.block_on(loadgen::bench_stack::bench_stack_cmd(args)),
    }
}

async fn otlp_cmd(args: OtlpArgs) -> ExitCode {
    let cfg = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadgen otlp: {e}");
            return ExitCode::from(2);
        }
    };
    match loadgen::otlp::generator::run(&cfg).await {
        Ok(report) => {
            print!("{}", report.text());
            exit(report.requests_failed == 0)
        }
        Err(e) => {
            eprintln!("loadgen otlp: {e}");
            ExitCode::from(2)
        }
    }
}

async fn sink_cmd(args: SinkArgs) -> ExitCode {
    use loadgen::otlp::sink::Sink;
    let sink = match Sink::start(args.config()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loadgen sink: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "loadgen sink: OTLP/HTTP on {}, gRPC on {}",
        sink.http_addr.map_or("-".into(), |a| a.to_string()),
        sink.grpc_addr.map_or("-".into(), |a| a.to_string())
    );
    let print = |sink: &Sink| {
        let t = sink.totals();
        println!(
            "requests {} spans {} malformed {} bytes {}",
            t.requests, t.spans, t.malformed, t.bytes
        );
    };
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(args.every.max(std::time::Duration::from_millis(100)));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => print(&sink),
            _ = tokio::signal::ctrl_c() => break,
        }
        if args.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
    }
    print(&sink);
    ExitCode::SUCCESS
}

async fn bench_cmd(args: BenchArgs) -> ExitCode {
    let cfg = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadgen bench-collector: {e}");
            return ExitCode::from(2);
        }
    };
    // Ctrl-C drops the bench future, and with it every child's guard (which kills it).
    let result = tokio::select! {
        r = loadgen::otlp::bench::run(&cfg, |line| eprintln!("{line}")) => r,
        _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
    };
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen bench-collector: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!();
    print!("{}", report.table());
    for f in report.flags() {
        println!("flag: {f}");
    }
    match report.write(&cfg.out_dir) {
        Ok(()) => {
            println!("report: {}", cfg.out_dir.join("report.md").display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen bench-collector: writing the report: {e}");
            ExitCode::FAILURE
        }
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
        ok &= report("summary", path, write_json(path, &summary));
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
    ok &= report(
        "latency histogram",
        &plot,
        write_latency_svg(&plot, &title, &series),
    );
    exit(ok)
}

async fn lab_cmd(cfg: LabConfig, out: OutputArgs) -> ExitCode {
    let (summary, _) = match sampling_lab(&cfg).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", summary.run.table());
    println!();
    print!("{}", summary.table());
    let mut ok = true;
    if let Some(path) = &out.summary {
        ok &= report("summary", path, write_json(path, &summary));
    }
    let bars: Vec<KeptBars> = summary
        .strategies
        .iter()
        .map(|s| KeptBars {
            name: s.name.clone(),
            traces_pct: s.traces_kept_pct,
            error_traces_pct: s.error_traces_kept_pct,
            slow_traces_pct: s.slow_traces_kept_pct,
        })
        .collect();
    let title = format!(
        "sampling lab: {} requests at {}/s, seed {}: what each strategy kept",
        summary.requests, summary.run.rate, summary.run.seed
    );
    let plot = out.plot_path("sampling-lab.svg");
    let written = sampling_svg(&title, &bars).and_then(|svg| write_svg(&plot, &svg));
    ok &= report("chart", &plot, written);
    exit(ok)
}

/// Says where a file went, or why it did not; true when written.
fn report(what: &str, path: &std::path::Path, written: Result<(), String>) -> bool {
    match written {
        Ok(()) => {
            println!("{what}: {}", path.display());
            true
        }
        Err(e) => {
            eprintln!("loadgen: writing the {what}: {e}");
            false
        }
    }
}

fn exit(ok: bool) -> ExitCode {
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
