//! inventory-service configuration: every knob comes from the environment (clap `env = ...`), so
//! `inventory-service --help` lists every variable.

use std::time::Duration;

use clap::Parser;
use service_kit::{AdminArgs, DatabaseArgs, ServerArgs};

/// inventory-service: stock reservations and the `orders` Kafka consumer.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "inventory-service",
    version,
    about,
    long_about = None,
    after_help = service_kit::config::telemetry_env_help(),
    mut_arg("port", service_kit::config::default("8083")),
    mut_arg("max_body_bytes", service_kit::config::default("16384")),
    mut_arg("database_url", service_kit::config::default("sqlite:data/inventory-service.db?mode=rwc"))
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

    /// Kafka bootstrap servers; empty or unset disables the `orders` consumer.
    #[arg(long, env = "KAFKA_BROKERS")]
    pub kafka_brokers: Option<String>,

    /// Topic the consumer reads `order.placed` events from.
    #[arg(long, env = "KAFKA_TOPIC", default_value = contracts::events::ORDERS_TOPIC)]
    pub kafka_topic: String,

    /// Consumer group id.
    #[arg(long, env = "KAFKA_GROUP_ID", default_value = "inventory-service")]
    pub kafka_group_id: String,

    /// Consumer group protocol: `classic`, or `consumer` (KIP-848; needs Kafka 4 or librdkafka's
    /// mock cluster, where it also avoids the classic protocol's initial rebalance delay).
    #[arg(long, env = "KAFKA_GROUP_PROTOCOL", default_value = "classic")]
    pub kafka_group_protocol: String,

    /// Rows of stock-movement history seeded at first start (the table `inventory.slow_query` scans).
    #[arg(long, env = "INVENTORY_SEED_MOVEMENTS", default_value_t = 200_000)]
    pub seed_movements: i64,

    /// The `inventory.slow_query` fix: `true` creates the stock_movements index at start-up, `false`
    /// drops it, unset leaves it as it is (`PUT /admin/slow-query` switches it at run time).
    #[arg(long, env = "INVENTORY_FIX_SLOW_QUERY")]
    pub fix_slow_query: Option<bool>,

    /// Base URL of the mail API the consumer sends confirmation e-mails through (card-provider's
    /// `/v1/emails` in the demo).
    #[arg(
        long,
        env = "INVENTORY_MAIL_URL",
        default_value = "http://127.0.0.1:8090"
    )]
    pub mail_url: String,

    /// Timeout of one mail API call, in ms.
    #[arg(long, env = "INVENTORY_MAIL_TIMEOUT_MS", default_value_t = 10_000)]
    pub mail_timeout_ms: u64,

    /// Messages the orders consumer processes at once. 1 (one at a time, each waiting for its
    /// e-mail) is scenario `kafka.consumer_lag`'s bug; more is its fix (`PUT /admin/consumer`
    /// changes it at run time). Offsets are committed in order whatever the value.
    #[arg(long, env = "INVENTORY_CONSUMER_CONCURRENCY", default_value_t = 1)]
    pub consumer_concurrency: usize,
}

impl Config {
    /// Loopback, port 0, the given database, the mail API at card-provider's default address (tests
    /// that consume point `mail_url` at a simulator they start), a small movement history (20k rows: enough for the
    /// query plans to differ, quick to seed) and, with a broker, the `consumer` group protocol that
    /// librdkafka's MockCluster serves without the classic protocol's 3 s initial rebalance delay.
    pub fn for_tests(database_url: &str, kafka_brokers: Option<&str>) -> Self {
        Self {
            server: ServerArgs::for_tests(16 * 1024),
            admin: AdminArgs::default(),
            database: DatabaseArgs::for_tests(database_url),
            kafka_brokers: kafka_brokers.map(str::to_owned),
            kafka_topic: contracts::events::ORDERS_TOPIC.to_owned(),
            kafka_group_id: "inventory-service".to_owned(),
            kafka_group_protocol: "consumer".to_owned(),
            seed_movements: 20_000,
            fix_slow_query: None,
            mail_url: "http://127.0.0.1:8090".to_owned(),
            mail_timeout_ms: 10_000,
            consumer_concurrency: 1,
        }
    }

    /// The broker list, when Kafka is enabled.
    pub fn kafka(&self) -> Option<&str> {
        self.kafka_brokers
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
    }

    pub fn mail_timeout(&self) -> Duration {
        Duration::from_millis(self.mail_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn help_lists_every_env_variable() {
        service_kit::config::assert_help_lists(
            Config::command(),
            &[
                "ADMIN_TOKEN",
                "DATABASE_URL",
                "DATABASE_MAX_CONNECTIONS",
                "KAFKA_BROKERS",
                "KAFKA_TOPIC",
                "KAFKA_GROUP_ID",
                "KAFKA_GROUP_PROTOCOL",
                "INVENTORY_SEED_MOVEMENTS",
                "INVENTORY_FIX_SLOW_QUERY",
                "INVENTORY_MAIL_URL",
                "INVENTORY_MAIL_TIMEOUT_MS",
                "INVENTORY_CONSUMER_CONCURRENCY",
            ],
        );
    }

    #[test]
    fn empty_broker_list_disables_kafka() {
        let mut c = Config::for_tests("sqlite::memory:", Some(" "));
        assert_eq!(c.kafka(), None);
        c.kafka_brokers = Some("127.0.0.1:9092".into());
        assert_eq!(c.kafka(), Some("127.0.0.1:9092"));
    }
}
