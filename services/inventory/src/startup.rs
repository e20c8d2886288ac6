//! Building and running the application: pool + migrations + seeded history, the slow-query fix
//! from the environment, the router, the listener and (with a broker) the `orders` consumer.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

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
    listener: TcpListener,
    port: u16,
    router: Router,
    store: Store,
    consumer: Option<OrderConsumer>,
}

impl Application {
    /// Connects, migrates and seeds the database, applies `INVENTORY_FIX_SLOW_QUERY`, creates the
    /// Kafka consumer when `KAFKA_BROKERS` is set, and binds the listener (port 0 picks a free one).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = db::connect(&config.database_url, config.database_max_connections).await?;
        let store = Store::new(pool, &config.database_url);
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
            max_body_bytes: config.max_body_bytes,
            consumer_concurrency: concurrency,
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
            consumer,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
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
        let (stop_consumer, stopped) = watch::channel(false);
        let consumer = self
            .consumer
            .map(|consumer| tokio::spawn(consumer.run(stopped)));
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP");
        let _ = stop_consumer.send(true);
        if let Some(consumer) = consumer {
            consumer.await.context("the orders consumer panicked")?;
        }
        self.store.pool().close().await;
        served
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
