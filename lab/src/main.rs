//! `tracelab`: `up` runs the platform locally (what `make demo` runs), `assert` runs trace specs
//! against a running stack. Thin: the work is in the `lab` library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use lab::launcher::{self, LogSink, Ports, Sampling, Stack, StackOptions};
use lab::spec::{Spec, SpecRunner};
use lab::view::fmt_duration;
use lab::{TraceClient, spec};

#[derive(Parser, Debug)]
#[command(
    name = "tracelab",
    version,
    about = "Run the tracelab platform locally and test it with trace assertions"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PortMode {
    /// The brief's ports: gateway 8080, query API 16686, OTLP 4317/4318, …
    Default,
    /// Free ports (several stacks side by side, tests): the services bind port 0 and report theirs,
    /// the collector and the viewer get free ports picked by the launcher.
    Auto,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the collector, card-provider, the four services, the embedded Kafka (and the viewer when built);
    /// Ctrl-C stops everything.
    Up(UpArgs),
    /// Run YAML trace specs (a request + assertions on its trace) against a running stack.
    Assert(AssertArgs),
    /// GET URL: exit 0 on a 2xx answer, 1 otherwise with the reason on stderr (the containers'
    /// health check; redirects are not followed).
    Probe(ProbeArgs),
    /// Internal: the watchdog that stops the stack's children if the launcher dies.
    #[command(hide = true)]
    Reap,
}

#[derive(clap::Args, Debug)]
struct UpArgs {
    /// SQLite files (one per service) go here.
    #[arg(long, env = "TRACELAB_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Directory with the `collector` and service binaries [default: next to this executable].
    #[arg(long, env = "TRACELAB_BIN_DIR")]
    bin_dir: Option<PathBuf>,
    #[arg(long, value_enum, env = "TRACELAB_PORTS", default_value = "default")]
    ports: PortMode,
    /// `all` keeps every trace (collector/config/default.yaml); `tail` runs seed 000's tail
    /// sampling (collector/config/tail-sampling.yaml: errors, > 2 s, 10 % of the rest); `lab` keeps
    /// everything and runs four strategies side by side for `loadgen sampling-lab`
    /// (collector/config/sampling-lab.yaml).
    #[arg(long, value_enum, env = "TRACELAB_SAMPLING", default_value = "all")]
    sampling: Sampling,
    /// Run this collector config instead.
    #[arg(long, env = "TRACELAB_COLLECTOR_CONFIG")]
    collector_config: Option<PathBuf>,
    /// PostgreSQL for all services instead of SQLite files.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// External Kafka brokers instead of the embedded MockCluster.
    #[arg(long, env = "KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// RUST_LOG for every child.
    #[arg(long, env = "TRACELAB_RUST_LOG", default_value = "info")]
    rust_log: String,
    /// Show the children's JSON log lines as they are.
    #[arg(long, env = "TRACELAB_RAW_LOGS")]
    raw_logs: bool,
    /// Do not send the start-up checkout that measures "first trace queryable".
    #[arg(long, env = "TRACELAB_NO_SMOKE")]
    no_smoke: bool,
    /// Seconds a child gets between SIGTERM and SIGKILL.
    #[arg(long, env = "TRACELAB_STOP_GRACE_SECS", default_value_t = 10)]
    stop_grace_secs: u64,
    /// The services' ADMIN_TOKEN (their /admin routes need `Authorization: Bearer TOKEN`)
    /// [default: a random token per run, printed at start].
    #[arg(long, env = "TRACELAB_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

#[derive(clap::Args, Debug)]
struct AssertArgs {
    /// Spec files, or directories of `*.yaml` specs.
    #[arg(required = true)]
    specs: Vec<PathBuf>,
    #[arg(
        long,
        env = "TRACELAB_GATEWAY_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    gateway: String,
    #[arg(
        long,
        env = "TRACELAB_QUERY_URL",
        default_value = "http://127.0.0.1:16686"
    )]
    query: String,
}

#[derive(clap::Args, Debug)]
struct ProbeArgs {
    /// The URL to GET, e.g. http://127.0.0.1:8080/readyz.
    url: String,
    /// How long to wait for the answer: 2s, 500ms.
    #[arg(long, default_value = "2s", value_parser = lab::probe::parse_timeout)]
    timeout: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Probe(args) = &cli.command {
        return probe(args);
    }
    if let Command::Reap = cli.command {
        launcher::reaper::run(Duration::from_secs(10));
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tracelab: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Up(args) => rt.block_on(up(args)),
        Command::Assert(args) => rt.block_on(assert(args)),
        Command::Reap | Command::Probe(_) => ExitCode::SUCCESS,
    }
}

/// One GET on a single-threaded runtime: a health check runs every few seconds.
fn probe(args: &ProbeArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tracelab probe: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(lab::probe::probe(&args.url, args.timeout)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("tracelab probe {}: {reason}", args.url);
            ExitCode::FAILURE
        }
    }
}

fn default_bin_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("."))
}

async fn up(args: UpArgs) -> ExitCode {
    let mut opts = StackOptions::new(args.bin_dir.unwrap_or_else(default_bin_dir), &args.data_dir);
    opts.sampling = args.sampling;
    opts.collector_config = args.collector_config;
    opts.database_url = args.database_url.filter(|s| !s.trim().is_empty());
    opts.kafka_brokers = args.kafka_brokers.filter(|s| !s.trim().is_empty());
    opts.rust_log = args.rust_log;
    opts.stop_grace = Duration::from_secs(args.stop_grace_secs);
    opts.admin_token = args.admin_token.filter(|s| !s.trim().is_empty());
    if let LogSink::Terminal { pretty, .. } = &mut opts.logs {
        *pretty = !args.raw_logs;
    }
    if args.ports == PortMode::Auto {
        match Ports::auto() {
            Ok(p) => {
                opts.ports = p;
                opts.auto_ports = true;
            }
            Err(e) => {
                eprintln!("tracelab: cannot pick free ports: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let sampling = opts.sampling;
    let config = opts.collector_config_path();
    let kafka_note = if opts.kafka_brokers.is_some() {
        "external"
    } else {
        "embedded MockCluster"
    };
    let db_note = if opts.database_url.is_some() {
        "PostgreSQL (DATABASE_URL)".to_string()
    } else {
        format!("SQLite files in {}", opts.data_dir.display())
    };
    // Installed before anything starts: a Ctrl-C at any moment must stop what runs.
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tracelab: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "tracelab: starting the stack (collector config {})",
        config.display()
    );
    let started = tokio::select! {
        r = Stack::start(opts) => r,
        _ = signals.recv() => {
            // Dropping the half-started stack closes the reaper's pipe: it stops the children.
            eprintln!("tracelab: interrupted during start-up; stopping what was started");
            return ExitCode::FAILURE;
        }
    };
    let stack = match started {
        Ok(s) => s,
        Err(e) => {
            eprintln!("\ntracelab: the stack did not start:\n{e}");
            return ExitCode::FAILURE;
        }
    };
    let u = &stack.urls;
    println!();
    println!(
        "tracelab is up in {} — what runs where:",
        fmt_duration(stack.ready_after)
    );
    println!("  gateway        {}   (POST /orders)", u.gateway);
    println!(
        "  query API      {}   (Jaeger API: /api/traces/{{id}}, /api/services; tracelab /api/v1)",
        u.query
    );
    if let Some(v) = &u.viewer {
        println!("  viewer         {v}");
    }
    println!("  prometheus     {}", u.prometheus);
    println!(
        "  OTLP           {} (gRPC), {} (HTTP)",
        u.otlp_grpc, u.otlp_http
    );
    println!(
        "  services       order {}  payment {}  inventory {}",
        u.order, u.payment, u.inventory
    );
    println!(
        "  card-provider  {}   (the outside world: card and mail APIs, no spans)",
        u.provider
    );
    println!("  kafka          {} ({kafka_note})", u.kafka_brokers);
    println!("  databases      {db_note}");
    println!(
        "  sampling       {}",
        match sampling {
            Sampling::All => "keep every trace (--sampling tail for seed 000's tail sampling)",
            Sampling::Tail =>
                "tail: errors, > 2 s, 10 % of the rest (decided ~10 s after a trace starts)",
            Sampling::Lab =>
                "lab: keep every trace, plus head 10 %, tail, rate-limited and errors-only stores side by side (loadgen sampling-lab)",
        }
    );
    for (name, pid) in stack.processes() {
        println!("  pid {pid:<8} {name}");
    }
    println!(
        "  admin token    {}   (ADMIN_TOKEN of every /admin route; the viewer's /flags panel holds it)",
        stack.admin_token
    );
    println!(
        "  try: curl -si -X POST {}/orders -H 'content-type: application/json' -d '{}'",
        u.gateway, CHECKOUT_BODY
    );
    println!(
        "       curl -s {}/admin/flags -H 'authorization: Bearer {}'",
        u.gateway, stack.admin_token
    );
    println!("  Ctrl-C stops everything.\n");

    let outcome = tokio::select! {
        _ = async {
            if !args.no_smoke {
                smoke(&stack, sampling).await;
            }
            std::future::pending::<()>().await
        } => ExitCode::SUCCESS,
        o = wait_for_stop(&stack, &mut signals) => o,
    };
    eprintln!("\ntracelab: stopping the stack…");
    let killed = stack.shutdown().await;
    if !killed.is_empty() {
        eprintln!("tracelab: had to SIGKILL {killed:?} after the grace period");
    }
    eprintln!("tracelab: stopped; no process left behind.");
    outcome
}

const CHECKOUT_BODY: &str =
    r#"{"items":[{"sku":"LAPTOP-1","qty":1}],"payment":{"method":"card","token":"tok_test_123"}}"#;

/// One checkout through the gateway; prints how long after start its trace became queryable.
async fn smoke(stack: &Stack, sampling: Sampling) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default();
    let resp = http
        .post(format!("{}/orders", stack.urls.gateway))
        .header("content-type", "application/json")
        .header("x-tracelab-scenario", "checkout")
        .body(CHECKOUT_BODY)
        .send()
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tracelab: start-up checkout failed: {e}");
            return;
        }
    };
    let status = resp.status();
    let Some(trace_id) = spec::trace_id_of(resp.headers()) else {
        eprintln!("tracelab: start-up checkout answered {status} without X-Trace-Id");
        return;
    };
    if sampling == Sampling::Tail {
        println!(
            "tracelab: start-up checkout {status}, trace {trace_id} (tail sampling decides whether it is kept)"
        );
        return;
    }
    let client = TraceClient::new(&stack.urls.query);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = client.get_trace(&trace_id).await {
            let since_start = stack.started_at.elapsed();
            println!(
                "tracelab: first trace queryable {:.2}s after start (checkout {status}): {}/api/traces/{trace_id}",
                since_start.as_secs_f64(),
                stack.urls.query
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("tracelab: start-up trace {trace_id} not queryable after 30 s");
}

/// SIGINT (Ctrl-C), SIGTERM and SIGHUP: each means "stop the stack".
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
        }
    }
}

/// Blocks until a stop signal (success) or a child exits on its own (failure).
async fn wait_for_stop(stack: &Stack, signals: &mut Signals) -> ExitCode {
    tokio::select! {
        _ = signals.recv() => ExitCode::SUCCESS,
        exit = stack.next_exit() => {
            let banner = "!".repeat(78);
            eprintln!("\n{banner}");
            match exit {
                Some(e) => eprint!("tracelab: a process of the stack CRASHED — not restarting it, stopping the rest.\n{e}"),
                None => eprintln!("tracelab: lost track of the children"),
            }
            eprintln!("{banner}");
            ExitCode::FAILURE
        }
    }
}

async fn assert(args: AssertArgs) -> ExitCode {
    let mut specs: Vec<(PathBuf, Spec)> = Vec::new();
    for p in &args.specs {
        let loaded = if p.is_dir() {
            spec::load_dir(p)
        } else {
            Spec::from_file(p).map(|s| vec![(p.clone(), s)])
        };
        match loaded {
            Ok(mut v) => specs.append(&mut v),
            Err(e) => {
                eprintln!("tracelab: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let runner = SpecRunner::new(&args.gateway, &args.query);
    let mut failed = 0usize;
    for (path, s) in &specs {
        let o = runner.run(s).await;
        let trace = o.trace_id.as_deref().unwrap_or("-");
        if o.passed() {
            println!(
                "PASS {:<28} {} assertions, trace {trace} ({:.1}s)",
                o.name,
                o.checked,
                o.elapsed.as_secs_f64()
            );
        } else {
            failed += 1;
            println!("FAIL {:<28} ({}) trace {trace}", o.name, path.display());
            if let Err(e) = &o.result {
                for line in e.to_string().lines() {
                    println!("     {line}");
                }
            }
        }
    }
    println!("{} passed, {} failed", specs.len() - failed, failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
