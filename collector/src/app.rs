//! [`Collector`]: a running collector — the wired pipelines, the receivers' servers, the
//! Prometheus exporters' endpoints, the health_check extension and the self-metrics endpoint —
//! started from a [`LoadedConfig`] and stopped in order by [`Collector::shutdown`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use tokio::sync::watch;

use crate::config::{ComponentId, ExporterConfig, ExtensionConfig, LoadedConfig, ReceiverConfig};
use crate::exporters::tracelab::TracelabExporter;
use crate::pipeline::build::{BuildOptions, Stop, build};
use crate::pipeline::self_metrics::SelfMetrics;
use crate::query::StoreRegistry;
use crate::receivers::otlp::RunningReceiver;

pub use crate::pipeline::build::BuildOptions as StartOptions;

/// Why a collector did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot wire the pipelines: {0}")]
    Build(String),
    #[error("{component}: {source}")]
    Bind {
        component: String,
        #[source]
        source: std::io::Error,
    },
}

struct Server {
    name: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

pub struct Collector {
    receivers: Vec<(String, RunningReceiver)>,
    servers: Vec<Server>,
    stop_first: Vec<Box<dyn Stop>>,
    stop_last: Vec<Box<dyn Stop>>,
    addrs: BTreeMap<String, SocketAddr>,
    ready: Arc<AtomicBool>,
    self_metrics: Arc<SelfMetrics>,
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Binds `endpoint` and serves `router` until stopped.
async fn serve(
    name: &str,
    endpoint: &str,
    router: Router,
) -> Result<(SocketAddr, Server), StartError> {
    let bind_err = |source| StartError::Bind {
        component: name.to_string(),
        source,
    };
    let addr = crate::config::registry::listen_addr(endpoint)
        .map_err(|m| bind_err(std::io::Error::new(std::io::ErrorKind::InvalidInput, m)))?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        bind_err(std::io::Error::new(
            e.kind(),
            format!("cannot listen on {endpoint}: {e}"),
        ))
    })?;
    let local = listener.local_addr().map_err(bind_err)?;
    let (stop, rx) = watch::channel(false);
    let n = name.to_string();
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stopped(rx))
            .await
        {
            tracing::error!(server = %n, error = %e, "server failed");
        }
    });
    tracing::info!(server = %name, addr = %local, "listening");
    Ok((
        local,
        Server {
            name: name.to_string(),
            stop,
            task,
        },
    ))
}

fn metrics_router(m: Arc<SelfMetrics>) -> Router {
    Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = m.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    m.render(),
                )
            }
        }),
    )
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `m` is `None` when `service.telemetry.metrics.level` is `none`: no `/metrics` then.
fn health_router(path: &str, ready: Arc<AtomicBool>, m: Option<Arc<SelfMetrics>>) -> Router {
    let since = SystemTime::now();
    let started = Instant::now();
    let handler = move || {
        let ready = ready.clone();
        async move {
            let body = |status: &str| {
                axum::Json(serde_json::json!({
                    "status": status,
                    "upSinceUnix": unix_secs(since),
                    "uptime": format!("{:.3}s", started.elapsed().as_secs_f64()),
                }))
            };
            if ready.load(Ordering::SeqCst) {
                (StatusCode::OK, body("Server available")).into_response()
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    body("Server not available"),
                )
                    .into_response()
            }
        }
    };
    let r = Router::new().route(path, axum::routing::get(handler));
    match m {
        Some(m) if path != "/metrics" => r.merge(metrics_router(m)),
        _ => r,
    }
}

impl Collector {
    /// Wires the pipelines and starts every server. Port 0 anywhere binds an ephemeral port;
    /// [`Collector::addr`] reports the actual one.
    pub async fn start(config: LoadedConfig) -> Result<Self, StartError> {
        Self::start_with(config, StartOptions::default()).await
    }

    pub async fn start_with(config: LoadedConfig, opts: BuildOptions) -> Result<Self, StartError> {
        // Freed memory goes back to the kernel within about a second (jemalloc's decay).
        crate::alloc::tune();
        // Stores are opened before wiring; only those a pipeline uses. In id order, so `query`
        // below names the same store every time.
        let mut stores = BTreeMap::new();
        let used: std::collections::HashSet<&ComponentId> = config
            .pipelines
            .iter()
            .flat_map(|p| p.exporters.iter())
            .collect();
        for (id, ec) in &config.exporters {
            if let ExporterConfig::Tracelab(t) = ec
                && used.contains(id)
            {
                let exp = TracelabExporter::start(t)
                    .await
                    .map_err(|e| StartError::Build(format!("exporters.{id}: {e}")))?;
                stores.insert(id.clone(), (Arc::new(exp), t.query.endpoint.clone()));
            }
        }
        let tracelab = stores
            .iter()
            .map(|(k, (e, _))| (k.clone(), e.clone()))
            .collect();
        let mut registry = StoreRegistry::default();
        for (id, (exp, _)) in &stores {
            registry.insert(id.to_string(), exp.store());
        }
        let registry = Arc::new(registry);
        let graph = build(&config, opts, tracelab).map_err(StartError::Build)?;
        let sampling = graph.sampling.clone();
        let red = graph.red.clone();
        let ready = Arc::new(AtomicBool::new(false));
        let mut c = Collector {
            receivers: Vec::new(),
            servers: Vec::new(),
            stop_first: graph.stop_first,
            stop_last: graph.stop_last,
            addrs: BTreeMap::new(),
            ready: ready.clone(),
            self_metrics: graph.self_metrics.clone(),
        };
        let mut result = Ok(());
        for (id, (_, endpoint)) in &stores {
            let own = id.to_string();
            let router =
                match crate::query::router(&own, registry.clone(), sampling.clone(), red.clone()) {
                    Ok(r) => r,
                    Err(e) => {
                        result = Err(StartError::Build(e.to_string()));
                        break;
                    }
                };
            match serve(&format!("{id} query API"), endpoint, router).await {
                Ok((addr, s)) => {
                    registry.set_query_endpoint(&own, addr);
                    // `query`: the unnamed `tracelab` store's API, else the first in id order.
                    if own == "tracelab" || !c.addrs.contains_key("query") {
                        c.addrs.insert("query".into(), addr);
                    }
                    c.addrs.insert(format!("{id}/query"), addr);
                    c.servers.push(s);
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() {
            result = c
                .start_servers(&config, graph.receivers, graph.prometheus)
                .await;
        }
        if let Err(e) = result {
            c.shutdown().await;
            return Err(e);
        }
        ready.store(true, Ordering::SeqCst);
        tracing::info!(config = %config.source, addrs = ?c.addrs, "collector started");
        Ok(c)
    }

    async fn start_servers(
        &mut self,
        config: &LoadedConfig,
        mut receivers: std::collections::HashMap<
            crate::config::ComponentId,
            crate::receivers::otlp::SignalConsumers,
        >,
        prometheus: Vec<(
            crate::config::ComponentId,
            String,
            Arc<crate::exporters::prometheus::PrometheusExporter>,
        )>,
    ) -> Result<(), StartError> {
        for (id, endpoint, exp) in prometheus {
            let (addr, s) = serve(&id.to_string(), &endpoint, exp.router()).await?;
            self.addrs.insert(id.to_string(), addr);
            self.servers.push(s);
        }
        for ext_id in &config.service_extensions {
            let Some(ExtensionConfig::HealthCheck(h)) = config.extensions.get(ext_id) else {
                continue;
            };
            let metrics = config
                .telemetry
                .metrics
                .enabled()
                .then(|| self.self_metrics.clone());
            let router = health_router(&h.path, self.ready.clone(), metrics);
            let (addr, s) = serve(&ext_id.to_string(), &h.endpoint, router).await?;
            self.addrs.insert(ext_id.to_string(), addr);
            self.servers.push(s);
        }
        if let Some(addr) = &config.telemetry.metrics.address
            && config.telemetry.metrics.enabled()
        {
            let (a, s) =
                serve("telemetry", addr, metrics_router(self.self_metrics.clone())).await?;
            self.addrs.insert("telemetry".into(), a);
            self.servers.push(s);
        }
        // Receivers last: data flows in only once everything downstream is up.
        for (id, rc) in &config.receivers {
            let consumers = receivers.remove(id).unwrap_or_default();
            let used = consumers.traces.is_some()
                || consumers.metrics.is_some()
                || consumers.logs.is_some();
            if !used {
                continue;
            }
            let ReceiverConfig::Otlp(o) = rc;
            let running = crate::receivers::otlp::start(&id.to_string(), o, consumers)
                .await
                .map_err(|source| StartError::Bind {
                    component: format!("receivers.{id}"),
                    source,
                })?;
            if let Some(a) = running.addrs.grpc {
                self.addrs.insert(format!("{id}/grpc"), a);
            }
            if let Some(a) = running.addrs.http {
                self.addrs.insert(format!("{id}/http"), a);
            }
            self.receivers.push((id.to_string(), running));
        }
        Ok(())
    }

    /// Bound addresses by name: `otlp/grpc`, `otlp/http` (receiver id + protocol),
    /// exporter ids (`prometheus`), extension ids (`health_check`), `telemetry`, `ID/query` for
    /// each tracelab store's query API (`tracelab/query`, `tracelab/head/query`), and `query`
    /// (the `tracelab` store's, or with only named stores the first's in id order).
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.addrs.get(name).copied()
    }

    pub fn addrs(&self) -> &BTreeMap<String, SocketAddr> {
        &self.addrs
    }

    /// Counters and queue sizes of every component.
    pub fn self_metrics(&self) -> &Arc<SelfMetrics> {
        &self.self_metrics
    }

    /// Graceful, ordered shutdown: receivers stop accepting (in-flight requests finish),
    /// processors flush upstream first, exporters drain last; then the HTTP servers stop.
    pub async fn shutdown(mut self) {
        self.ready.store(false, Ordering::SeqCst);
        for (id, r) in self.receivers.drain(..) {
            r.shutdown().await;
            tracing::debug!(receiver = %id, "receiver stopped");
        }
        for s in self.stop_first.iter().chain(self.stop_last.iter()) {
            if let Err(e) = s.stop().await {
                tracing::warn!(component = %s.name(), error = %e, "shutdown: flush failed");
            }
        }
        for s in self.servers.drain(..) {
            let _ = s.stop.send(true);
            let _ = s.task.await;
            tracing::debug!(server = %s.name, "server stopped");
        }
        tracing::info!("collector stopped");
    }
}
