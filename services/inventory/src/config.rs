//! inventory-service configuration: every knob comes from the environment (clap `env = ...`), so
//! `inventory-service --help` lists every variable.

use std::time::Duration;

use clap::Parser;
use service_kit::{DatabaseArgs, ServerArgs};

/// inventory-service: stock reservations and the `orders` Kafka consumer.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "inventory-service",
    version,
    about,
    long_about = None,
    after_help = service_kit::config::TELEMETRY_ENV_HELP,
    mut_arg("port", service_kit::config::default("8083")),
    mut_arg("max_body_bytes", service_kit::config::default("16384")),
    mut_arg("database_url", service_kit::config::default("sqlite:data/inventory-service.db?mode=rwc"))
)]
pub struct Config {
    // BIND_ADDR, PORT, PORT_FILE, MAX_BODY_BYTES.
    #[command(flatten)]
    pub server: ServerArgs,

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

    /// Extra processing time per message under scenario `kafka.consumer_lag`, in ms.
    #[arg(long, env = "INVENTORY_CONSUMER_LAG_DELAY_MS", default_value_t = 2000)]
    pub consumer_lag_delay_ms: u64,

    /// Simulated e-mail provider latency of `send_confirmation_email`, in ms.
    #[arg(long, env = "INVENTORY_EMAIL_LATENCY_MS", default_value_t = 10)]
    pub email_latency_ms: u64,
}

impl Config {
    /// Loopback, port 0, the given database, a small movement history (20k rows: enough for the
    /// query plans to differ, quick to seed) and, with a broker, the `consumer` group protocol that
    /// librdkafka's MockCluster serves without the classic protocol's 3 s initial rebalance delay.
    pub fn for_tests(database_url: &str, kafka_brokers: Option<&str>) -> Self {
        Self {
            server: ServerArgs::for_tests(16 * 1024),
            database: DatabaseArgs::for_tests(database_url),
            kafka_brokers: kafka_brokers.map(str::to_owned),
            kafka_topic: contracts::events::ORDERS_TOPIC.to_owned(),
            kafka_group_id: "inventory-service".to_owned(),
            kafka_group_protocol: "consumer".to_owned(),
            seed_movements: 20_000,
            fix_slow_query: None,
            consumer_lag_delay_ms: 2000,
            email_latency_ms: 10,
        }
    }

    /// The broker list, when Kafka is enabled.
    pub fn kafka(&self) -> Option<&str> {
        self.kafka_brokers
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
    }

    pub fn consumer_lag_delay(&self) -> Duration {
        Duration::from_millis(self.consumer_lag_delay_ms)
    }

    pub fn email_latency(&self) -> Duration {
        Duration::from_millis(self.email_latency_ms)
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
                "DATABASE_URL",
                "DATABASE_MAX_CONNECTIONS",
                "KAFKA_BROKERS",
                "KAFKA_TOPIC",
                "KAFKA_GROUP_ID",
                "KAFKA_GROUP_PROTOCOL",
                "INVENTORY_SEED_MOVEMENTS",
                "INVENTORY_FIX_SLOW_QUERY",
                "INVENTORY_CONSUMER_LAG_DELAY_MS",
                "INVENTORY_EMAIL_LATENCY_MS",
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
