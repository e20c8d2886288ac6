//! Wiring: `Application::build` opens the database (running migrations), creates the downstream
//! clients and the outbox relay, and binds the listener; `run_until_stopped` serves until the shutdown
//! future resolves, then stops the relay (both through `service_kit::Server`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use opentelemetry::metrics::Histogram;
use service_kit::Server;
use sqlx::AnyPool;
use tokio::sync::Notify;

use crate::clients::Downstream;
use crate::config::Config;
use crate::domain::repository::Repository;
use crate::outbox::{Relay, RelayConfig};
use crate::{db, routes};

/// Instruments owned by the service (HTTP server metrics come from the telemetry kit).
#[derive(Clone)]
pub struct Metrics {
    pub order_creation_duration: Histogram<f64>,
}

impl Metrics {
    fn new() -> Self {
        let meter = opentelemetry::global::meter("order-service");
        Self {
            order_creation_duration: meter
                .f64_histogram("order_creation_duration_seconds")
                .with_description("Time to place an order, from request to confirmation or failure")
                .with_unit("s")
                .with_boundaries(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .build(),
        }
    }
}

/// What every handler can reach; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub repo: Repository,
    pub payment: Downstream,
    pub inventory: Downstream,
    pub kafka_topic: String,
    pub outbox_notify: Arc<Notify>,
    pub metrics: Metrics,
    pub idempotency: IdempotencySettings,
    /// `ORDER_CHECK_STOCK_FIRST`, switchable at run time (`PUT /admin/checkout`).
    pub check_stock_first: Arc<std::sync::atomic::AtomicBool>,
}

/// `IDEMPOTENCY_WAIT_MS` and `IDEMPOTENCY_LEASE_MS` (see `domain::idempotency`).
#[derive(Debug, Clone, Copy)]
pub struct IdempotencySettings {
    pub wait: Duration,
    pub lease: Duration,
}

pub struct Application {
    server: Server,
    relay: Option<Relay>,
    pool: AnyPool,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = config
            .database
            .connect(&db::MIGRATOR, "order-service")
            .await?;
        let repo = Repository::new(
            pool.clone(),
            telemetry::db::system_from_url(&config.database.database_url),
        );
        let outbox_notify = Arc::new(Notify::new());
        let relay = match config.kafka_brokers() {
            Some(brokers) => Some(Relay::new(
                repo.clone(),
                outbox_notify.clone(),
                &RelayConfig {
                    brokers: brokers.to_owned(),
                    message_timeout: Duration::from_millis(config.kafka_message_timeout_ms),
                    poll_interval: Duration::from_millis(config.outbox_poll_interval_ms),
                    batch_size: config.outbox_batch_size,
                },
            )?),
            None => {
                tracing::warn!("KAFKA_BROKERS is not set: order events stay pending in the outbox");
                None
            }
        };
        let state = AppState {
            repo,
            payment: Downstream::new(
                "payment-service",
                &config.payment_service_url,
                config.downstream_timeout(),
            ),
            inventory: Downstream::new(
                "inventory-service",
                &config.inventory_service_url,
                config.downstream_timeout(),
            ),
            kafka_topic: config.kafka_topic.clone(),
            outbox_notify,
            metrics: Metrics::new(),
            idempotency: IdempotencySettings {
                wait: Duration::from_millis(config.idempotency_wait_ms),
                lease: Duration::from_millis(config.idempotency_lease_ms),
            },
            check_stock_first: Arc::new(std::sync::atomic::AtomicBool::new(
                config.check_stock_first,
            )),
        };
        let router = routes::router(state, &config.admin)
            .layer(DefaultBodyLimit::max(config.server.max_body_bytes));
        // Health probes outside the telemetry layer: they neither trace nor count as traffic.
        let router = telemetry::http::instrument_router(router)
            .merge(service_kit::health::database(pool.clone()));
        let server = Server::bind(&config.server, "order-service", router).await?;
        Ok(Self {
            server,
            relay,
            pool,
        })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The service's database pool (tests inspect stored rows through it).
    pub fn pool(&self) -> AnyPool {
        self.pool.clone()
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let relay = self.relay.map(|relay| |stop| relay.run(stop));
        self.server.serve_with(shutdown, relay).await
    }
}
