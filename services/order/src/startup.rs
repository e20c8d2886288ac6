//! Wiring: `Application::build` opens the database (running migrations), creates the downstream
//! clients and the outbox relay, and binds the listener; `run_until_stopped` serves until the shutdown
//! future resolves, then stops the relay.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use opentelemetry::metrics::Histogram;
use sqlx::AnyPool;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::clients::Downstream;
use crate::config::Config;
use crate::domain::repository::Repository;
use crate::outbox::{Relay, RelayConfig};
use crate::{db, routes};

/// Instruments owned by the service (HTTP server metrics come from the telemetry kit).
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
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub repo: Repository,
    pub payment: Downstream,
    pub inventory: Downstream,
    pub kafka_topic: String,
    pub outbox_notify: Arc<Notify>,
    pub metrics: Metrics,
    pub idempotency: IdempotencySettings,
    /// `ORDER_CHECK_STOCK_FIRST`, switchable at run time (`PUT /admin/checkout`).
    pub check_stock_first: std::sync::atomic::AtomicBool,
}

/// `IDEMPOTENCY_WAIT_MS` and `IDEMPOTENCY_LEASE_MS` (see `domain::idempotency`).
#[derive(Debug, Clone, Copy)]
pub struct IdempotencySettings {
    pub wait: Duration,
    pub lease: Duration,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    relay: Option<Relay>,
    pool: AnyPool,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = db::connect(&config.database_url, config.db_max_connections).await?;
        let repo = Repository::new(
            pool.clone(),
            telemetry::db::system_from_url(&config.database_url),
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
        let state = AppState(Arc::new(Inner {
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
            check_stock_first: std::sync::atomic::AtomicBool::new(config.check_stock_first),
        }));
        let router = routes::router(state).layer(DefaultBodyLimit::max(config.max_body_bytes));
        let router = telemetry::http::instrument_router(router);
        let listener = TcpListener::bind(SocketAddr::new(config.bind_addr, config.port)).await?;
        tracing::info!(addr = %listener.local_addr()?, "order-service listening");
        Ok(Self {
            listener,
            router,
            relay,
            pool,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// The service's database pool (tests inspect stored rows through it).
    pub fn pool(&self) -> AnyPool {
        self.pool.clone()
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let relay = self.relay.map(|relay| tokio::spawn(relay.run(stop_rx)));
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await;
        let _ = stop_tx.send(true);
        if let Some(relay) = relay {
            let _ = relay.await;
        }
        served?;
        Ok(())
    }
}
