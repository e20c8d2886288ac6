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
use std::sync::Arc;

use service_kit::Server;

pub use config::Config;
use ledger::Ledger;

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub ledger: Arc<Ledger>,
}

/// A bound, not yet serving card-provider. It uses the services' skeleton (`service_kit::Server`:
/// bind, PORT_FILE, graceful shutdown) but never initialises telemetry: no spans, like a third party.
pub struct Application {
    server: Server,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let server_args = config.server.clone();
        let state = AppState {
            config: Arc::new(config),
            ledger: Arc::new(Ledger::default()),
        };
        let server = Server::bind(&server_args, "card-provider", routes::router(state)).await?;
        Ok(Self { server })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.server.serve(shutdown).await
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
