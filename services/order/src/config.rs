//! order-service configuration: every setting comes from an environment variable (or the matching
//! flag), with defaults that work on a laptop; `order-service --help` lists them all.

use std::time::Duration;

use service_kit::{AdminArgs, DatabaseArgs, ServerArgs};

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "order-service",
    version,
    about = "tracelab order-service: prices, stores and orchestrates checkouts (payment, inventory) and \
             publishes order.placed through a transactional outbox",
    after_help = service_kit::config::telemetry_env_help(),
    mut_arg("port", service_kit::config::default("8081")),
    mut_arg("database_url", service_kit::config::default("sqlite:data/order-service.db?mode=rwc"))
)]
pub struct Config {
    // BIND_ADDR, PORT, PORT_FILE, MAX_BODY_BYTES.
    #[command(flatten)]
    pub server: ServerArgs,
    // ADMIN_TOKEN: the bearer token of the /admin routes.
    #[command(flatten)]
    pub admin: AdminArgs,
    // DATABASE_URL, DATABASE_MAX_CONNECTIONS.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Base URL of payment-service.
    #[arg(
        long,
        env = "PAYMENT_SERVICE_URL",
        default_value = "http://127.0.0.1:8082"
    )]
    pub payment_service_url: String,
    /// Base URL of inventory-service.
    #[arg(
        long,
        env = "INVENTORY_SERVICE_URL",
        default_value = "http://127.0.0.1:8083"
    )]
    pub inventory_service_url: String,
    /// Timeout of each call to payment or inventory, in ms (provider.slow needs ~4.2 s).
    #[arg(long, env = "DOWNSTREAM_TIMEOUT_MS", default_value_t = 10_000)]
    pub downstream_timeout_ms: u64,
    /// Kafka bootstrap servers; empty or unset keeps outbox rows pending (no relay).
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,
    /// Topic the outbox relay publishes order events to.
    #[arg(long, env = "KAFKA_TOPIC", default_value = contracts::events::ORDERS_TOPIC)]
    pub kafka_topic: String,
    /// How long librdkafka keeps trying to deliver one message before the relay backs off, in ms.
    #[arg(long, env = "KAFKA_MESSAGE_TIMEOUT_MS", default_value_t = 5_000)]
    pub kafka_message_timeout_ms: u64,
    /// Interval at which the outbox relay looks for pending rows when nothing wakes it, in ms.
    #[arg(long, env = "OUTBOX_POLL_INTERVAL_MS", default_value_t = 500)]
    pub outbox_poll_interval_ms: u64,
    /// Rows the relay publishes per round.
    #[arg(long, env = "OUTBOX_BATCH_SIZE", default_value_t = 100)]
    pub outbox_batch_size: u32,
    /// The `inventory.out_of_stock` fix: ask inventory-service for the stock of every item before
    /// charging, so a sold-out order is refused without a charge and a refund
    /// (`PUT /admin/checkout` switches it at run time).
    #[arg(long, env = "ORDER_CHECK_STOCK_FIRST", default_value_t = false, action = clap::ArgAction::Set)]
    pub check_stock_first: bool,
    /// How long a `POST /orders` whose Idempotency-Key is held by a request still running waits for
    /// that request's answer before answering 409 `idempotency_in_progress`, in ms.
    #[arg(long, env = "IDEMPOTENCY_WAIT_MS", default_value_t = 10_000)]
    pub idempotency_wait_ms: u64,
    /// Lease of a held Idempotency-Key, in ms: a key whose request vanished (cancelled, crashed) is
    /// taken over by a retry after this long, and the retry resumes the same order. Keep it above the
    /// slowest checkout (two downstream calls plus a refund, each up to DOWNSTREAM_TIMEOUT_MS).
    #[arg(long, env = "IDEMPOTENCY_LEASE_MS", default_value_t = 60_000)]
    pub idempotency_lease_ms: u64,
}

impl Config {
    /// Loopback, port 0, short timeouts; downstream URLs point nowhere until the test sets them.
    pub fn for_tests(database_url: &str, kafka_brokers: Option<&str>) -> Self {
        Self {
            server: ServerArgs::for_tests(64 * 1024),
            admin: AdminArgs::default(),
            database: DatabaseArgs::for_tests(database_url),
            payment_service_url: "http://127.0.0.1:9".to_owned(),
            inventory_service_url: "http://127.0.0.1:9".to_owned(),
            downstream_timeout_ms: 10_000,
            kafka_brokers: kafka_brokers.map(str::to_owned),
            kafka_topic: contracts::events::ORDERS_TOPIC.to_owned(),
            kafka_message_timeout_ms: 2_000,
            outbox_poll_interval_ms: 100,
            outbox_batch_size: 100,
            check_stock_first: false,
            idempotency_wait_ms: 10_000,
            idempotency_lease_ms: 60_000,
        }
    }

    pub fn downstream_timeout(&self) -> Duration {
        Duration::from_millis(self.downstream_timeout_ms)
    }

    /// `KAFKA_BROKERS`, or `None` when unset or blank.
    pub fn kafka_brokers(&self) -> Option<&str> {
        self.kafka_brokers
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn help_lists_every_variable() {
        service_kit::config::assert_help_lists(
            Config::command(),
            &[
                "ADMIN_TOKEN",
                "DATABASE_URL",
                "DATABASE_MAX_CONNECTIONS",
                "PAYMENT_SERVICE_URL",
                "INVENTORY_SERVICE_URL",
                "DOWNSTREAM_TIMEOUT_MS",
                "KAFKA_BROKERS",
                "KAFKA_TOPIC",
                "KAFKA_MESSAGE_TIMEOUT_MS",
                "OUTBOX_POLL_INTERVAL_MS",
                "OUTBOX_BATCH_SIZE",
                "ORDER_CHECK_STOCK_FIRST",
                "IDEMPOTENCY_WAIT_MS",
                "IDEMPOTENCY_LEASE_MS",
            ],
        );
    }
}
