//! The launcher: the whole platform as separate local processes, no Docker — the embedded Kafka
//! (a librdkafka MockCluster in this process), the collector, the four services and the viewer
//! when it is built. `Stack::start` is what `tracelab up` and the end-to-end tests both use.
//!
//! Every run has an admin token (random unless [`StackOptions::admin_token`] names one): the
//! services get it as `ADMIN_TOKEN`, so their `/admin` routes answer only requests that carry it,
//! and so does the viewer, whose flags panel calls them ([`Stack::admin_http`] is the tests' client).
//!
//! Order matters three times: the collector starts (and is ready) before the services so their
//! first spans have somewhere to go; a service starts once the services it calls have reported
//! their ports (each binds the port it is given, or with `PORT=0` one the OS picks, and writes it
//! to its `PORT_FILE`); and on shutdown the collector stops last so the services' final flush lands.

pub mod kafka;
pub mod ports;
pub mod process;
pub mod reaper;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

pub use kafka::EmbeddedKafka;
pub use ports::Ports;
pub use process::{ChildExit, ChildSpec, LogSink, Supervised};
pub use reaper::Reaper;

/// Which collector configuration to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Sampling {
    /// `collector/config/default.yaml`: keep every trace (a workshop sees every click).
    #[default]
    All,
    /// `collector/config/tail-sampling.yaml`: seed 000's policy — keep errors, keep traces over
    /// 2 s, 10 % of the rest.
    Tail,
    /// `collector/config/sampling-lab.yaml`: keep everything, and fan the same traces out to four
    /// strategies (head 10 %, seed 000's tail policy, rate-limited, errors only), each into its
    /// own store, for `loadgen sampling-lab`.
    Lab,
}

impl Sampling {
    pub fn config_file(self) -> &'static str {
        match self {
            Sampling::All => "default.yaml",
            Sampling::Tail => "tail-sampling.yaml",
            Sampling::Lab => "sampling-lab.yaml",
        }
    }
}

/// The four services: binary / `OTEL_SERVICE_NAME`, in start order (callees before callers).
pub const SERVICES: [&str; 4] = [
    "inventory-service",
    "payment-service",
    "order-service",
    "api-gateway",
];
pub const COLLECTOR: &str = "collector";
/// The simulator of the outside world (card API, mail API); it starts before the services that
/// call it and emits no spans.
pub const PROVIDER: &str = "card-provider";
/// Start-up attempts with automatically picked collector and viewer ports (see [`Stack::start`]).
pub const PORT_ATTEMPTS: u32 = 3;
pub const VIEWER: &str = "viewer";

/// How to start a stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Where the `collector`, service and `tracelab` binaries are.
    pub bin_dir: PathBuf,
    /// SQLite files (one per service) and, in tests, logs.
    pub data_dir: PathBuf,
    /// What to listen on; a service port of 0 lets the service pick (see [`Ports::auto`]).
    pub ports: Ports,
    /// `ports` came from [`Ports::auto`]: when the collector or the viewer finds its pre-picked
    /// port taken at start-up, pick again and retry.
    pub auto_ports: bool,
    pub sampling: Sampling,
    /// Directory holding `default.yaml` and `tail-sampling.yaml`.
    pub collector_config_dir: PathBuf,
    /// Run this collector config instead of the one `sampling` picks.
    pub collector_config: Option<PathBuf>,
    /// PostgreSQL for every service instead of SQLite files.
    pub database_url: Option<String>,
    /// Use these brokers instead of the embedded MockCluster.
    pub kafka_brokers: Option<String>,
    pub logs: LogSink,
    pub ready_timeout: Duration,
    /// SIGTERM → SIGKILL grace per child on shutdown.
    pub stop_grace: Duration,
    /// `RUST_LOG` for the children.
    pub rust_log: String,
    /// Start the viewer when its binary exists.
    pub viewer: bool,
    /// More environment for every child (applied last).
    pub extra_env: Vec<(String, String)>,
    /// More environment for the four services only, after `extra_env` (e.g. `OTEL_SDK_DISABLED`
    /// or a sampler for `loadgen bench-stack`, which must not change the collector's own).
    pub service_env: Vec<(String, String)>,
    /// The services' `ADMIN_TOKEN`; `None` picks a random one for this run ([`random_token`]).
    pub admin_token: Option<String>,
}

impl StackOptions {
    /// The `make demo` defaults: brief ports, keep-all sampling, SQLite under `data_dir`.
    pub fn new(bin_dir: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            bin_dir: bin_dir.into(),
            data_dir: data_dir.into(),
            ports: Ports::defaults(),
            auto_ports: false,
            sampling: Sampling::All,
            collector_config_dir: default_collector_config_dir(),
            collector_config: None,
            database_url: None,
            kafka_brokers: None,
            logs: LogSink::terminal(),
            ready_timeout: Duration::from_secs(60),
            stop_grace: Duration::from_secs(10),
            rust_log: "info".into(),
            viewer: true,
            extra_env: Vec::new(),
            service_env: Vec::new(),
            admin_token: None,
        }
    }

    /// For tests: free ports, logs to `data_dir/logs`, no viewer, no external brokers or database
    /// (the caller's environment is not consulted).
    pub fn for_tests(
        bin_dir: impl Into<PathBuf>,
        data_dir: impl Into<PathBuf>,
    ) -> std::io::Result<Self> {
        let data_dir = data_dir.into();
        let mut o = Self::new(bin_dir, data_dir.clone());
        o.ports = Ports::auto()?;
        o.auto_ports = true;
        o.logs = LogSink::Files(data_dir.join("logs"));
        o.viewer = false;
        o.ready_timeout = Duration::from_secs(90);
        Ok(o)
    }

    /// The collector config file this stack runs.
    pub fn collector_config_path(&self) -> PathBuf {
        self.collector_config
            .clone()
            .unwrap_or_else(|| self.collector_config_dir.join(self.sampling.config_file()))
    }
}

/// `collector/config` in the working directory when it is there (`make demo` runs from the
/// repository root), else next to this crate's sources.
pub fn default_collector_config_dir() -> PathBuf {
    let cwd = PathBuf::from("collector/config");
    if cwd.is_dir() {
        cwd
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../collector/config")
    }
}

/// Where the viewer's browser bundle is: `target/site` for binaries in `target/<profile>` (what
/// `viewer/scripts/build-assets.sh` writes and the viewer reads by default).
pub fn viewer_site_root(bin_dir: &Path) -> PathBuf {
    bin_dir
        .parent()
        .map_or_else(|| PathBuf::from("site"), |t| t.join("site"))
}

/// 32 hex digits from the kernel's CSPRNG (`/dev/urandom`): a run's admin token.
pub fn random_token() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Where every part of a running stack answers.
#[derive(Debug, Clone)]
pub struct StackUrls {
    pub gateway: String,
    pub order: String,
    pub payment: String,
    pub inventory: String,
    /// card-provider (the outside world's card and mail APIs).
    pub provider: String,
    /// The collector's query API (Jaeger HTTP API + `/api/v1`).
    pub query: String,
    pub otlp_grpc: String,
    pub otlp_http: String,
    pub prometheus: String,
    pub collector_health: String,
    pub viewer: Option<String>,
    pub kafka_brokers: String,
}

impl StackUrls {
    fn new(p: &Ports, kafka: &str, viewer: bool) -> Self {
        let u = |port: u16| format!("http://127.0.0.1:{port}");
        Self {
            gateway: u(p.gateway),
            order: u(p.order),
            payment: u(p.payment),
            inventory: u(p.inventory),
            provider: u(p.provider),
            query: u(p.query),
            otlp_grpc: u(p.otlp_grpc),
            otlp_http: u(p.otlp_http),
            prometheus: format!("{}/metrics", u(p.prometheus)),
            collector_health: u(p.health),
            viewer: viewer.then(|| u(p.viewer)),
            kafka_brokers: kafka.to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(
        "missing binaries in {dir}: {missing:?}. Build them first: `cargo build --workspace --bins` \
         (or `cargo build --release --workspace --bins` and `--bin-dir target/release`)"
    )]
    MissingBinaries { dir: String, missing: Vec<String> },
    #[error("collector config {0} does not exist")]
    MissingConfig(String),
    #[error("embedded Kafka: {0}")]
    Kafka(#[from] kafka::KafkaError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("PostgreSQL (DATABASE_URL): {0}")]
    Database(String),
    #[error("a process of the stack exited during start-up:\n{0}")]
    Crashed(ChildExit),
    #[error("`{name}` was not ready at {url} after {waited:.0?}; its last lines:\n{tail}")]
    NotReady {
        name: String,
        url: String,
        waited: Duration,
        tail: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LaunchError {
    let what = what.into();
    move |source| LaunchError::Io { what, source }
}

/// A running stack. Stop it with [`Stack::shutdown`]; if the owning process dies instead, the
/// reaper process stops the children.
#[derive(Debug)]
pub struct Stack {
    pub urls: StackUrls,
    pub ports: Ports,
    /// Time from `Stack::start` to every process answering its health check.
    pub ready_after: Duration,
    pub started_at: Instant,
    pub log_dir: Option<PathBuf>,
    /// The collector config the stack runs.
    pub collector_config: PathBuf,
    /// The `ADMIN_TOKEN` the services' `/admin` routes (and the viewer) were given.
    pub admin_token: String,
    children: Vec<Supervised>,
    exits: tokio::sync::Mutex<mpsc::UnboundedReceiver<ChildExit>>,
    exits_seen: Mutex<Vec<ChildExit>>,
    kafka: Option<EmbeddedKafka>,
    reaper: Option<Reaper>,
    stop_grace: Duration,
}

/// The environment every service gets (besides `OTEL_SERVICE_NAME`, `PORT` and `PORT_FILE`). The
/// callee URLs are only right for the services whose callees have reported their ports.
fn service_env(opts: &StackOptions, urls: &StackUrls, admin_token: &str) -> Vec<(String, String)> {
    vec![
        ("ADMIN_TOKEN".into(), admin_token.into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), urls.otlp_http.clone()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), "http/protobuf".into()),
        // Export spans every 200 ms instead of the SDK's 5 s, so a trace is queryable about a
        // second after its request: what a workshop and the e2e tests want.
        ("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into()),
        ("OTEL_BLRP_SCHEDULE_DELAY".into(), "500".into()),
        ("OTEL_METRIC_EXPORT_INTERVAL".into(), "5000".into()),
        ("RUST_LOG".into(), opts.rust_log.clone()),
        ("BIND_ADDR".into(), "127.0.0.1".into()),
        ("ORDER_SERVICE_URL".into(), urls.order.clone()),
        ("PAYMENT_SERVICE_URL".into(), urls.payment.clone()),
        ("INVENTORY_SERVICE_URL".into(), urls.inventory.clone()),
        ("PAYMENT_PROVIDER_URL".into(), urls.provider.clone()),
        ("INVENTORY_MAIL_URL".into(), urls.provider.clone()),
        ("KAFKA_BROKERS".into(), urls.kafka_brokers.clone()),
    ]
}

fn service_port<'a>(p: &'a mut Ports, name: &str) -> &'a mut u16 {
    match name {
        "api-gateway" => &mut p.gateway,
        "order-service" => &mut p.order,
        "payment-service" => &mut p.payment,
        PROVIDER => &mut p.provider,
        _ => &mut p.inventory,
    }
}

/// The services `name` calls, which must have reported their ports before it starts (their URLs
/// are part of its environment).
fn callees(name: &str) -> &'static [&'static str] {
    match name {
        "api-gateway" => &["order-service"],
        "order-service" => &["payment-service", "inventory-service"],
        _ => &[],
    }
}

/// The directory of the services' port files.
fn ports_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("ports")
}

/// Where service `name` writes its bound port (`PORT_FILE`).
pub fn port_file(data_dir: &Path, name: &str) -> PathBuf {
    ports_dir(data_dir).join(format!("{name}.port"))
}

/// `sqlite:DIR/NAME.db?mode=rwc`, one file per service (each service owns its tables).
pub fn sqlite_url(data_dir: &Path, service: &str) -> String {
    format!(
        "sqlite:{}?mode=rwc",
        data_dir.join(format!("{service}.db")).display()
    )
}

impl Stack {
    /// Starts everything and waits until each process answers its health check.
    ///
    /// The services never need a retry: with automatic ports they bind port 0 and report the
    /// port the OS gave them. The collector and the viewer listen on ports picked in advance; with
    /// [`StackOptions::auto_ports`], a start-up that fails because one of those was taken between
    /// picking and binding (another process got it first) is retried with new ports, at most
    /// [`PORT_ATTEMPTS`] times in all.
    pub async fn start(mut opts: StackOptions) -> Result<Stack, LaunchError> {
        let started_at = Instant::now();
        let mut attempt = 1;
        loop {
            match Self::start_once(&opts, started_at).await {
                Err(LaunchError::Crashed(exit))
                    if opts.auto_ports
                        && attempt < PORT_ATTEMPTS
                        && !SERVICES.contains(&exit.name.as_str())
                        && exit.is_port_conflict() =>
                {
                    attempt += 1;
                    opts.ports = Ports::auto().map_err(io("picking free ports"))?;
                }
                other => return other,
            }
        }
    }

    async fn start_once(opts: &StackOptions, started_at: Instant) -> Result<Stack, LaunchError> {
        std::fs::create_dir_all(&opts.data_dir)
            .map_err(io(format!("creating {}", opts.data_dir.display())))?;
        let data_dir = std::fs::canonicalize(&opts.data_dir).map_err(io("data dir"))?;
        // Absolute, because children run in the data dir: `--bin-dir target/release` must work.
        let mut opts = opts.clone();
        if let Ok(bins) = std::fs::canonicalize(&opts.bin_dir) {
            opts.bin_dir = bins;
        }
        let opts = &opts;

        let site = viewer_site_root(&opts.bin_dir);
        let viewer_built = opts.viewer && opts.bin_dir.join(VIEWER).is_file();
        let with_viewer = viewer_built && site.join("pkg").join("viewer.js").is_file();
        if viewer_built && !with_viewer {
            // The server binary without its browser bundle would only fail at start-up and take
            // the whole stack down with it.
            eprintln!(
                "tracelab: the viewer's browser bundle is missing in {}; starting without the viewer (build it with `make viewer`)",
                site.display()
            );
        }
        let mut missing: Vec<String> = [COLLECTOR, PROVIDER]
            .into_iter()
            .chain(SERVICES)
            .filter(|b| !opts.bin_dir.join(b).is_file())
            .map(String::from)
            .collect();
        missing.sort();
        if !missing.is_empty() {
            return Err(LaunchError::MissingBinaries {
                dir: opts.bin_dir.display().to_string(),
                missing,
            });
        }
        let config = opts.collector_config_path();
        if !config.is_file() {
            return Err(LaunchError::MissingConfig(config.display().to_string()));
        }

        let (kafka, brokers) = match &opts.kafka_brokers {
            Some(b) if !b.trim().is_empty() => (None, b.clone()),
            _ => {
                let k = EmbeddedKafka::start(1)?;
                let b = k.bootstrap_servers().to_string();
                (Some(k), b)
            }
        };
        let urls = StackUrls::new(&opts.ports, &brokers, with_viewer);
        let admin_token = match &opts.admin_token {
            Some(t) if !t.trim().is_empty() => t.trim().to_owned(),
            _ => random_token().map_err(io("reading /dev/urandom for the admin token"))?,
        };
        let reaper_bin = opts.bin_dir.join("tracelab");
        let reaper = if reaper_bin.is_file() {
            Some(Reaper::spawn(&reaper_bin).map_err(io("starting the reaper"))?)
        } else {
            None
        };
        let (exit_tx, exit_rx) = mpsc::unbounded_channel();
        let log_dir = match &opts.logs {
            LogSink::Files(d) => Some(d.clone()),
            LogSink::Terminal { .. } => None,
        };
        let mut stack = Stack {
            urls,
            ports: opts.ports,
            ready_after: Duration::ZERO,
            started_at,
            log_dir,
            collector_config: PathBuf::new(),
            admin_token,
            children: Vec::new(),
            exits: tokio::sync::Mutex::new(exit_rx),
            exits_seen: Mutex::new(Vec::new()),
            kafka,
            reaper,
            stop_grace: opts.stop_grace,
        };

        let result = stack
            .spawn_all(opts, &data_dir, &config, with_viewer, exit_tx)
            .await;
        match result {
            Ok(()) => {
                stack.ready_after = started_at.elapsed();
                Ok(stack)
            }
            Err(e) => {
                stack.shutdown().await;
                Err(e)
            }
        }
    }

    async fn spawn_all(
        &mut self,
        opts: &StackOptions,
        data_dir: &Path,
        config: &Path,
        with_viewer: bool,
        exits: mpsc::UnboundedSender<ChildExit>,
    ) -> Result<(), LaunchError> {
        let mut p = opts.ports;
        let ports_dir = ports_dir(data_dir);
        std::fs::create_dir_all(&ports_dir)
            .map_err(io(format!("creating {}", ports_dir.display())))?;
        let effective = std::fs::canonicalize(config)
            .map_err(io(format!("collector config {}", config.display())))?;
        self.collector_config = effective.clone();
        let collector = ChildSpec {
            name: COLLECTOR.into(),
            program: opts.bin_dir.join(COLLECTOR),
            args: vec!["--config".into(), effective.display().to_string()],
            env: collector_env(&p, opts, data_dir),
            // Relative paths in a user's config resolve inside the data dir.
            cwd: Some(data_dir.to_path_buf()),
        };
        self.spawn(&collector, opts, exits.clone()).await?;
        self.wait_ready(
            COLLECTOR,
            &format!("{}/", self.urls.collector_health),
            opts.ready_timeout,
        )
        .await?;

        // The outside world first: payment and inventory call it from their first request.
        let file = port_file(data_dir, PROVIDER);
        match std::fs::remove_file(&file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(format!("removing {}", file.display()))(e));
            }
            _ => {}
        }
        let provider = ChildSpec {
            name: PROVIDER.into(),
            program: opts.bin_dir.join(PROVIDER),
            args: vec![],
            env: [
                (
                    "PORT".to_owned(),
                    service_port(&mut p, PROVIDER).to_string(),
                ),
                ("PORT_FILE".to_owned(), file.display().to_string()),
                ("BIND_ADDR".to_owned(), "127.0.0.1".to_owned()),
                ("RUST_LOG".to_owned(), opts.rust_log.clone()),
            ]
            .into_iter()
            .chain(opts.extra_env.iter().cloned())
            .collect(),
            cwd: None,
        };
        self.spawn(&provider, opts, exits.clone()).await?;
        self.wait_port(PROVIDER, data_dir, opts.ready_timeout)
            .await?;
        self.wait_ready(
            PROVIDER,
            &format!("{}/health", self.urls.provider),
            opts.ready_timeout,
        )
        .await?;

        let pg_urls = match &opts.database_url {
            Some(url) if url.starts_with("postgres") => postgres_urls(url).await?,
            _ => Vec::new(),
        };
        for name in SERVICES {
            for &callee in callees(name) {
                self.wait_port(callee, data_dir, opts.ready_timeout).await?;
            }
            let mut env = service_env(opts, &self.urls, &self.admin_token);
            if self.kafka.is_some() {
                // KIP-848 consumer groups: the MockCluster supports them and they skip the classic
                // protocol's ~3 s initial rebalance delay, so the first order's consumer span
                // follows within milliseconds. Real brokers (KAFKA_BROKERS) keep the default.
                env.push(("KAFKA_GROUP_PROTOCOL".into(), "consumer".into()));
            }
            let file = port_file(data_dir, name);
            // A file left by an earlier run would announce a port nobody listens on.
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io(format!("removing {}", file.display()))(e));
                }
                _ => {}
            }
            env.push(("OTEL_SERVICE_NAME".into(), name.into()));
            env.push(("PORT".into(), service_port(&mut p, name).to_string()));
            env.push(("PORT_FILE".into(), file.display().to_string()));
            let db = pg_urls
                .iter()
                .find(|(s, _)| s == name)
                .map(|(_, u)| u.clone())
                .or_else(|| opts.database_url.clone())
                .unwrap_or_else(|| sqlite_url(data_dir, name));
            env.push(("DATABASE_URL".into(), db));
            env.extend(opts.extra_env.iter().cloned());
            env.extend(opts.service_env.iter().cloned());
            let spec = ChildSpec {
                name: name.into(),
                program: opts.bin_dir.join(name),
                args: vec![],
                env,
                cwd: Some(data_dir.to_path_buf()),
            };
            self.spawn(&spec, opts, exits.clone()).await?;
        }
        for name in SERVICES {
            self.wait_port(name, data_dir, opts.ready_timeout).await?;
        }
        if with_viewer {
            let mut env = vec![
                ("OTEL_SERVICE_NAME".into(), "tracelab-viewer".into()),
                ("PORT".into(), p.viewer.to_string()),
                ("BIND_ADDR".into(), "127.0.0.1".into()),
                ("QUERY_API_URL".into(), self.urls.query.clone()),
                // The flags panel: the viewer's server calls these with the token.
                ("GATEWAY_URL".into(), self.urls.gateway.clone()),
                ("INVENTORY_URL".into(), self.urls.inventory.clone()),
                ("ADMIN_TOKEN".into(), self.admin_token.clone()),
                (
                    "LEPTOS_SITE_ROOT".into(),
                    viewer_site_root(&opts.bin_dir).display().to_string(),
                ),
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                    self.urls.otlp_http.clone(),
                ),
                ("RUST_LOG".into(), opts.rust_log.clone()),
            ];
            env.extend(opts.extra_env.iter().cloned());
            let spec = ChildSpec {
                name: VIEWER.into(),
                program: opts.bin_dir.join(VIEWER),
                args: vec![],
                env,
                cwd: None,
            };
            self.spawn(&spec, opts, exits.clone()).await?;
        }
        // Services become ready in parallel; wait for each in turn.
        for name in SERVICES {
            let url = format!(
                "http://127.0.0.1:{}/readyz",
                service_port(&mut self.ports, name)
            );
            self.wait_ready(name, &url, opts.ready_timeout).await?;
        }
        if let Some(v) = self.urls.viewer.clone() {
            self.wait_ready(VIEWER, &v, opts.ready_timeout).await?;
        }
        Ok(())
    }

    async fn spawn(
        &mut self,
        spec: &ChildSpec,
        opts: &StackOptions,
        exits: mpsc::UnboundedSender<ChildExit>,
    ) -> Result<(), LaunchError> {
        let child = Supervised::spawn(spec, self.children.len(), &opts.logs, exits)
            .map_err(io(format!("starting {}", spec.name)))?;
        if let Some(r) = &mut self.reaper {
            r.watch(child.pid)
                .await
                .map_err(io("registering with the reaper"))?;
        }
        self.children.push(child);
        Ok(())
    }

    /// Waits until service `name` has written its bound port to its `PORT_FILE` (see
    /// `service_kit::Server::bind`), then records it in `self.ports` and `self.urls`; fails fast
    /// when any child exits meanwhile.
    async fn wait_port(
        &mut self,
        name: &str,
        data_dir: &Path,
        timeout: Duration,
    ) -> Result<(), LaunchError> {
        let file = port_file(data_dir, name);
        let started = Instant::now();
        let port = loop {
            if let Some(exit) = self.try_exit().await {
                return Err(LaunchError::Crashed(exit));
            }
            // The service renames a complete file into place: it is absent or whole.
            if let Some(port) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|s| s.trim().parse::<u16>().ok())
                .filter(|&p| p != 0)
            {
                break port;
            }
            if started.elapsed() > timeout {
                return Err(LaunchError::NotReady {
                    name: name.into(),
                    url: format!("its port file {}", file.display()),
                    waited: started.elapsed(),
                    tail: self.tail_of(name).join("\n"),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        *service_port(&mut self.ports, name) = port;
        let url = format!("http://127.0.0.1:{port}");
        match name {
            "api-gateway" => self.urls.gateway = url,
            "order-service" => self.urls.order = url,
            "payment-service" => self.urls.payment = url,
            PROVIDER => self.urls.provider = url,
            _ => self.urls.inventory = url,
        }
        Ok(())
    }

    /// Polls `url` until it answers 2xx; fails fast when any child exits meanwhile.
    async fn wait_ready(
        &self,
        name: &str,
        url: &str,
        timeout: Duration,
    ) -> Result<(), LaunchError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        let started = Instant::now();
        loop {
            if let Some(exit) = self.try_exit().await {
                return Err(LaunchError::Crashed(exit));
            }
            if let Ok(r) = http.get(url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > timeout {
                let tail = self
                    .children
                    .iter()
                    .find(|c| c.name == name)
                    .map(|c| c.tail().join("\n"))
                    .unwrap_or_default();
                return Err(LaunchError::NotReady {
                    name: name.into(),
                    url: url.into(),
                    waited: started.elapsed(),
                    tail,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn try_exit(&self) -> Option<ChildExit> {
        let e = self.exits.lock().await.try_recv().ok()?;
        if let Ok(mut seen) = self.exits_seen.lock() {
            seen.push(e.clone());
        }
        Some(e)
    }

    /// Waits for the next child to exit (it was not asked to: nothing restarts it).
    pub async fn next_exit(&self) -> Option<ChildExit> {
        let e = self.exits.lock().await.recv().await?;
        if let Ok(mut seen) = self.exits_seen.lock() {
            seen.push(e.clone());
        }
        Some(e)
    }

    /// `Err` with the report of every child that has exited, for tests to attach to a failure.
    pub async fn check_alive(&self) -> Result<(), String> {
        while self.try_exit().await.is_some() {}
        let seen = self
            .exits_seen
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        if seen.is_empty() {
            Ok(())
        } else {
            Err(seen
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"))
        }
    }

    /// An HTTP client that sends `Authorization: Bearer <admin token>` with every request: what
    /// calls to the services' `/admin` routes need.
    pub fn admin_http(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Ok(mut v) =
            reqwest::header::HeaderValue::from_str(&format!("Bearer {}", self.admin_token))
        {
            v.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        reqwest::Client::builder()
            .default_headers(headers)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default()
    }

    /// Names and pids of the running children.
    pub fn processes(&self) -> Vec<(String, u32)> {
        self.children
            .iter()
            .map(|c| (c.name.clone(), c.pid))
            .collect()
    }

    /// The last lines of one child's output.
    pub fn tail_of(&self, name: &str) -> Vec<String> {
        self.children
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.tail())
            .unwrap_or_default()
    }

    /// Stops the children in reverse start order (viewer and gateway first, collector last so the
    /// services' last spans are received), each with SIGTERM and a grace period before SIGKILL.
    /// Returns the names of children that had to be killed.
    pub async fn shutdown(mut self) -> Vec<String> {
        let mut killed = Vec::new();
        for c in self.children.iter().rev() {
            if !c.has_exited() && !c.stop(self.stop_grace).await {
                killed.push(c.name.clone());
            }
        }
        self.children.clear();
        drop(self.kafka.take());
        if let Some(r) = self.reaper.take() {
            r.release().await;
        }
        killed
    }
}

/// The collector's listen addresses and store directory, by the environment variables its
/// shipped configs read (`${env:COLLECTOR_…:-default}` in `collector/config/*.yaml`).
fn collector_env(p: &Ports, opts: &StackOptions, data_dir: &Path) -> Vec<(String, String)> {
    let a = |port: u16| format!("127.0.0.1:{port}");
    let mut env = vec![
        ("OTEL_SERVICE_NAME".into(), "tracelab-collector".into()),
        ("RUST_LOG".into(), opts.rust_log.clone()),
        ("COLLECTOR_OTLP_GRPC_ENDPOINT".into(), a(p.otlp_grpc)),
        ("COLLECTOR_OTLP_HTTP_ENDPOINT".into(), a(p.otlp_http)),
        ("COLLECTOR_PROMETHEUS_ENDPOINT".into(), a(p.prometheus)),
        ("COLLECTOR_HEALTH_ENDPOINT".into(), a(p.health)),
        ("COLLECTOR_QUERY_ENDPOINT".into(), a(p.query)),
        // The store lives with the stack's data: stacks never share one.
        (
            "COLLECTOR_DATA_DIR".into(),
            data_dir.join("collector").display().to_string(),
        ),
    ];
    env.extend(opts.extra_env.iter().cloned());
    env
}

/// PostgreSQL: one schema per service in the given database (each service runs its own sqlx
/// migrations, and their `_sqlx_migrations` tables must not collide), selected with the
/// connection's `search_path`. Creates the schemas; returns each service's URL.
pub async fn postgres_urls(base: &str) -> Result<Vec<(String, String)>, LaunchError> {
    use sqlx::Connection;
    let mut conn = sqlx::postgres::PgConnection::connect(base)
        .await
        .map_err(|e| LaunchError::Database(e.to_string()))?;
    let mut out = Vec::new();
    // The gateway keeps no state; the other three own their tables.
    for service in SERVICES.into_iter().filter(|s| *s != "api-gateway") {
        let schema = service.replace('-', "_");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
        )))
        .execute(&mut conn)
        .await
        .map_err(|e| LaunchError::Database(e.to_string()))?;
        let sep = if base.contains('?') { '&' } else { '?' };
        out.push((
            service.to_string(),
            format!("{base}{sep}options[search_path]={schema}"),
        ));
    }
    let _ = conn.close().await;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_picks_the_shipped_config_unless_one_is_given() {
        let mut o = StackOptions::new("/bin", "/data");
        o.collector_config_dir = PathBuf::from("/cfg");
        assert_eq!(
            o.collector_config_path(),
            PathBuf::from("/cfg/default.yaml")
        );
        o.sampling = Sampling::Tail;
        assert_eq!(
            o.collector_config_path(),
            PathBuf::from("/cfg/tail-sampling.yaml")
        );
        o.collector_config = Some(PathBuf::from("/mine.yaml"));
        assert_eq!(o.collector_config_path(), PathBuf::from("/mine.yaml"));
    }

    #[test]
    fn shipped_configs_exist_where_the_launcher_looks() {
        let dir = default_collector_config_dir();
        for s in [Sampling::All, Sampling::Tail, Sampling::Lab] {
            assert!(dir.join(s.config_file()).is_file(), "{}", dir.display());
        }
    }

    #[test]
    fn every_service_gets_its_own_sqlite_file() {
        let urls: Vec<String> = SERVICES
            .iter()
            .map(|s| sqlite_url(Path::new("/d"), s))
            .collect();
        assert_eq!(urls[0], "sqlite:/d/inventory-service.db?mode=rwc");
        let mut dedup = urls.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), 4);
    }

    #[test]
    fn callees_start_before_their_callers() {
        for (i, name) in SERVICES.iter().enumerate() {
            for callee in callees(name) {
                let at = SERVICES.iter().position(|s| s == callee).unwrap();
                assert!(at < i, "{callee} must start before {name}");
            }
        }
    }

    #[test]
    fn admin_tokens_are_random_hex() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
        let urls = StackUrls::new(&Ports::defaults(), "k:1", false);
        let env = service_env(&StackOptions::new("/b", "/d"), &urls, &a);
        assert!(env.contains(&("ADMIN_TOKEN".into(), a.clone())));
    }

    #[tokio::test]
    async fn missing_binaries_are_named_with_the_build_command() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            Stack::start(StackOptions::for_tests(dir.path(), dir.path().join("data")).unwrap())
                .await
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("collector") && err.contains("api-gateway"),
            "{err}"
        );
        assert!(err.contains("cargo build --workspace --bins"), "{err}");
    }
}
