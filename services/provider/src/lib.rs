//! card-provider: the simulator of tracelab's outside world. A Stripe-like card API (charges,
//! refunds, test tokens and a test-mode header that select outcomes) and a mail API, served over
//! real HTTP so payment-service's and inventory-service's calls to it are real CLIENT spans with a
//! real network round trip. It is uninstrumented like a real third party: it emits no spans.
//!
//! Everything it simulates lives here, not in the services: latency (the only `sleep`s of the whole
//! checkout are in [`ledger::respond_after`]), declines, rate limiting, idempotent replays. State is
//! in memory and bounded; a restart forgets every charge, as a fresh test-mode account would.

pub mod config;
pub mod ledger;
pub mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;

pub use config::Config;
use ledger::Ledger;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub ledger: Arc<Ledger>,
}

/// A bound, not yet serving card-provider.
pub struct Application {
    listener: TcpListener,
    port: u16,
    router: Router,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let addr = SocketAddr::new(config.bind_addr, config.port);
        let state = AppState {
            config: Arc::new(config),
            ledger: Arc::new(Ledger::default()),
        };
        let router = routes::router(state);
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let port = listener.local_addr()?.port();
        Ok(Self {
            listener,
            port,
            router,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")
    }
}

/// Starts a card-provider on a tokio task of the current runtime and returns its base URL
/// (`http://127.0.0.1:PORT`): how the services' integration tests get their outside world.
pub async fn spawn(config: Config) -> anyhow::Result<String> {
    let app = Application::build(config).await?;
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    Ok(url)
}
