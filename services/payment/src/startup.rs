//! Building and running the application: pool + migrations, shared state, router, listener.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::provider::CardProvider;
use crate::store::Store;
use crate::{db, routes};

/// What every handler shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub provider: Arc<CardProvider>,
    pub metrics: Metrics,
    pub max_body_bytes: usize,
    pub idempotency_wait: Duration,
    /// `CHARGE_PENDING_LEASE_MS`: how long a pending charge claim is protected from takeover.
    pub charge_pending_lease: Duration,
}

/// A built, bound, not yet serving payment-service.
pub struct Application {
    listener: TcpListener,
    port: u16,
    router: Router,
    store: Store,
}

impl Application {
    /// Connects and migrates the database and binds the listener (port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = db::connect(&config.database_url, config.database_max_connections).await?;
        let store = Store::new(pool, &config.database_url);
        let state = AppState {
            store: store.clone(),
            provider: Arc::new(CardProvider::new(&config.provider)),
            metrics: Metrics::new(),
            max_body_bytes: config.max_body_bytes,
            idempotency_wait: Duration::from_millis(config.idempotency_wait_ms),
            charge_pending_lease: Duration::from_millis(config.charge_pending_lease_ms),
        };
        let router = routes::router(state);
        let addr = SocketAddr::new(config.bind_addr, config.port);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let port = listener.local_addr()?.port();
        Ok(Self {
            listener,
            port,
            router,
            store,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The storage layer (tests inspect what was written through it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests and closes the pool.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")?;
        self.store.pool().close().await;
        Ok(())
    }
}

/// Resolves on Ctrl-C or SIGTERM (what `docker stop` and Kubernetes send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown signal received");
}
