//! Building and running the application: pool + migrations + seeded history, the slow-query fix
//! from the environment, the router and (with a broker) the `orders` consumer; binding and serving
//! are `service_kit::Server`'s.

use std::future::Future;

use anyhow::Context;
use service_kit::Server;

use crate::config::Config;
use crate::domain::events::OrderEventHandler;
use crate::kafka::{self, Concurrency, OrderConsumer};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::{db, routes};

/// What every handler shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Metrics,
    pub max_body_bytes: usize,
    /// The orders consumer's concurrency (`PUT /admin/consumer`), the `kafka.consumer_lag` fix.
    pub consumer_concurrency: Concurrency,
}

/// A built, bound, not yet serving inventory-service.
pub struct Application {
    server: Server,
    store: Store,
    consumer: Option<OrderConsumer>,
}

impl Application {
    /// Connects, migrates and seeds the database, applies `INVENTORY_FIX_SLOW_QUERY`, creates the
    /// Kafka consumer when `KAFKA_BROKERS` is set, and binds the listener (port 0 picks a free one).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = config
            .database
            .connect(&db::MIGRATOR, "inventory-service")
            .await?;
        let store = Store::from_pool(pool, &config.database.database_url);
        let seeded = store
            .seed_movement_history(config.seed_movements)
            .await
            .context("seeding the stock movement history")?;
        if seeded > 0 {
            tracing::info!(rows = seeded, "seeded stock movement history");
        }
        if let Some(indexed) = config.fix_slow_query {
            store
                .set_movement_index(indexed)
                .await
                .context("applying INVENTORY_FIX_SLOW_QUERY")?;
        }
        let metrics = Metrics::new();
        let concurrency = Concurrency::new(config.consumer_concurrency);
        let consumer = match config.kafka() {
            Some(brokers) => {
                let consumer = kafka::create_consumer(&config, brokers)
                    .with_context(|| format!("creating the Kafka consumer for {brokers}"))?;
                let handler = OrderEventHandler::new(
                    store.clone(),
                    Mailer::new(&config.mail_url, config.mail_timeout()),
                );
                Some(OrderConsumer::new(
                    consumer,
                    config.kafka_group_id.clone(),
                    handler,
                    metrics.clone(),
                    concurrency.clone(),
                ))
            }
            None => {
                tracing::info!("KAFKA_BROKERS is not set: the orders consumer is disabled");
                None
            }
        };
        let state = AppState {
            store: store.clone(),
            metrics,
            max_body_bytes: config.server.max_body_bytes,
            consumer_concurrency: concurrency,
        };
        let router = routes::router(state, &config.admin)
            .merge(service_kit::health::database(store.pool().clone()));
        let server = Server::bind(&config.server, "inventory-service", router).await?;
        Ok(Self {
            server,
            store,
            consumer,
        })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The storage layer (tests inspect what was written through it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves HTTP and consumes `orders` until `shutdown` resolves; then drains in-flight requests,
    /// lets the consumer finish its current message, and closes the pool.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let consumer = self.consumer.map(|consumer| |stop| consumer.run(stop));
        let served = self.server.serve_with(shutdown, consumer).await;
        self.store.pool().close().await;
        served
    }
}
