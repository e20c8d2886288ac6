//! payment-service configuration: every knob comes from the environment (clap `env = ...`), so
//! `payment-service --help` lists every variable, including the simulated provider's latency model.

use std::time::Duration;

use clap::{Args, Parser};
use contracts::scenario::Scenario;
use service_kit::{DatabaseArgs, ServerArgs};

/// payment-service: idempotent card charges and refunds against a simulated external provider.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "payment-service",
    version,
    about,
    long_about = None,
    after_help = service_kit::config::TELEMETRY_ENV_HELP,
    mut_arg("port", service_kit::config::default("8082")),
    mut_arg("max_body_bytes", service_kit::config::default("16384")),
    mut_arg("database_url", service_kit::config::default("sqlite:data/payment-service.db?mode=rwc"))
)]
pub struct Config {
    // BIND_ADDR, PORT, PORT_FILE, MAX_BODY_BYTES.
    #[command(flatten)]
    pub server: ServerArgs,

    // DATABASE_URL, DATABASE_MAX_CONNECTIONS.
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// How long a retried charge waits for the first attempt with the same Idempotency-Key to finish
    /// before answering 409 `idempotency_in_progress`.
    #[arg(long, env = "IDEMPOTENCY_WAIT_MS", default_value_t = 10_000)]
    pub idempotency_wait_ms: u64,

    #[command(flatten)]
    pub provider: ProviderConfig,
}

/// The simulated external card provider and its latency model. The scenario numbers reproduce the
/// seeds: `payment.slow` (seed 000: `charge` ~1200 ms of a ~1300 ms request) and `provider.slow`
/// (seed 002: `stripe.create_charge` ~3650 ms inside payment's ~3800 ms).
#[derive(Debug, Clone, Args)]
pub struct ProviderConfig {
    /// Host name the provider's CLIENT span reports as `server.address`.
    #[arg(long, env = "PAYMENT_PROVIDER_HOST", default_value = "api.stripe.com")]
    pub provider_host: String,

    /// Port the provider's CLIENT span reports as `server.port`.
    #[arg(long, env = "PAYMENT_PROVIDER_PORT", default_value_t = 443)]
    pub provider_port: u16,

    /// Provider round trip on the normal path, in ms.
    #[arg(long, env = "PAYMENT_PROVIDER_LATENCY_MS", default_value_t = 8)]
    pub provider_latency_ms: u64,

    /// Uniform jitter added to the normal provider round trip, in ms (0..=N).
    #[arg(long, env = "PAYMENT_PROVIDER_JITTER_MS", default_value_t = 4)]
    pub provider_jitter_ms: u64,

    /// Provider round trip under scenario `provider.slow`, in ms.
    #[arg(long, env = "PAYMENT_PROVIDER_SLOW_LATENCY_MS", default_value_t = 3650)]
    pub provider_slow_latency_ms: u64,

    /// Fraud check (payment's own work inside `charge`) on the normal path, in ms.
    #[arg(long, env = "PAYMENT_FRAUD_CHECK_MS", default_value_t = 2)]
    pub fraud_check_ms: u64,

    /// Fraud check under scenario `payment.slow` (its workers are saturated), in ms.
    #[arg(long, env = "PAYMENT_SLOW_FRAUD_CHECK_MS", default_value_t = 1190)]
    pub payment_slow_fraud_check_ms: u64,

    /// Fraud check under scenario `provider.slow` (its lookups hit the same degraded provider), in ms.
    #[arg(
        long,
        env = "PAYMENT_PROVIDER_SLOW_FRAUD_CHECK_MS",
        default_value_t = 140
    )]
    pub provider_slow_fraud_check_ms: u64,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            provider_host: "api.stripe.com".into(),
            provider_port: 443,
            provider_latency_ms: 8,
            provider_jitter_ms: 4,
            provider_slow_latency_ms: 3650,
            fraud_check_ms: 2,
            payment_slow_fraud_check_ms: 1190,
            provider_slow_fraud_check_ms: 140,
        }
    }
}

impl ProviderConfig {
    /// How long the simulated provider takes to answer a charge under `scenario`.
    pub fn provider_delay(&self, scenario: Scenario) -> Duration {
        match scenario {
            Scenario::ProviderSlow => Duration::from_millis(self.provider_slow_latency_ms),
            _ => {
                let jitter = if self.provider_jitter_ms == 0 {
                    0
                } else {
                    rand::random_range(0..=self.provider_jitter_ms)
                };
                Duration::from_millis(self.provider_latency_ms + jitter)
            }
        }
    }

    /// How long the fraud check inside `charge` takes under `scenario`.
    pub fn fraud_check_delay(&self, scenario: Scenario) -> Duration {
        Duration::from_millis(match scenario {
            Scenario::PaymentSlow => self.payment_slow_fraud_check_ms,
            Scenario::ProviderSlow => self.provider_slow_fraud_check_ms,
            _ => self.fraud_check_ms,
        })
    }
}

impl Config {
    /// Loopback, port 0, the given database; the production latency model (so scenario tests see the
    /// seeds' shapes). Kafka is not used by payment-service; the parameter keeps the services' shape.
    pub fn for_tests(database_url: &str, _kafka_brokers: Option<&str>) -> Self {
        Self {
            server: ServerArgs::for_tests(16 * 1024),
            database: DatabaseArgs::for_tests(database_url),
            idempotency_wait_ms: 10_000,
            provider: ProviderConfig::default(),
        }
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
                "IDEMPOTENCY_WAIT_MS",
                "PAYMENT_PROVIDER_HOST",
                "PAYMENT_PROVIDER_PORT",
                "PAYMENT_PROVIDER_LATENCY_MS",
                "PAYMENT_PROVIDER_JITTER_MS",
                "PAYMENT_PROVIDER_SLOW_LATENCY_MS",
                "PAYMENT_FRAUD_CHECK_MS",
                "PAYMENT_SLOW_FRAUD_CHECK_MS",
                "PAYMENT_PROVIDER_SLOW_FRAUD_CHECK_MS",
            ],
        );
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let parsed = Config::try_parse_from(["payment-service"]).unwrap();
        assert_eq!(parsed.server.port, 8082);
        assert_eq!(parsed.server.max_body_bytes, 16 * 1024);
        let d = ProviderConfig::default();
        assert_eq!(
            parsed.provider.provider_slow_latency_ms,
            d.provider_slow_latency_ms
        );
        assert_eq!(
            parsed.provider.payment_slow_fraud_check_ms,
            d.payment_slow_fraud_check_ms
        );
        assert_eq!(parsed.provider.provider_latency_ms, d.provider_latency_ms);
    }

    #[test]
    fn latency_model_follows_the_scenario() {
        let m = ProviderConfig::default();
        assert_eq!(
            m.provider_delay(Scenario::ProviderSlow),
            Duration::from_millis(3650)
        );
        assert!(m.provider_delay(Scenario::Checkout) <= Duration::from_millis(12));
        assert_eq!(
            m.fraud_check_delay(Scenario::PaymentSlow),
            Duration::from_millis(1190)
        );
        assert_eq!(
            m.fraud_check_delay(Scenario::Checkout),
            Duration::from_millis(2)
        );
    }
}
