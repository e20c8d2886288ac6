//! Building and running the application: pool + migrations, shared state, router; binding and
//! serving are `service_kit::Server`'s.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use service_kit::Server;

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
    server: Server,
    store: Store,
}

impl Application {
    /// Connects and migrates the database and binds the listener (port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = config
            .database
            .connect(&db::MIGRATOR, "payment-service")
            .await?;
        let store = Store::from_pool(pool, &config.database.database_url);
        let state = AppState {
            store: store.clone(),
            provider: Arc::new(CardProvider::new(&config.provider)),
            metrics: Metrics::new(),
            max_body_bytes: config.server.max_body_bytes,
            idempotency_wait: Duration::from_millis(config.idempotency_wait_ms),
            charge_pending_lease: Duration::from_millis(config.charge_pending_lease_ms),
        };
        let router = routes::router(state, &config.admin)
            .merge(service_kit::health::database(store.pool().clone()));
        let server = Server::bind(&config.server, "payment-service", router).await?;
        Ok(Self { server, store })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
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
        self.server.serve(shutdown).await?;
        self.store.pool().close().await;
        Ok(())
    }
}
