//! payment-service configuration: every knob comes from the environment (clap `env = ...`), so
//! `payment-service --help` lists every variable, including the card provider's URL and client policy.

use clap::{Args, Parser};
use service_kit::{AdminArgs, DatabaseArgs, ServerArgs};

use crate::provider::ProviderPolicy;

/// payment-service: idempotent card charges and refunds through an external card provider.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "payment-service",
    version,
    about,
    long_about = None,
    after_help = service_kit::config::telemetry_env_help(),
    mut_arg("port", service_kit::config::default("8082")),
    mut_arg("max_body_bytes", service_kit::config::default("16384")),
    mut_arg("database_url", service_kit::config::default("sqlite:data/payment-service.db?mode=rwc"))
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

    /// How long a retried charge waits for the first attempt with the same Idempotency-Key to finish
    /// before answering 409 `idempotency_in_progress`.
    #[arg(long, env = "IDEMPOTENCY_WAIT_MS", default_value_t = 10_000)]
    pub idempotency_wait_ms: u64,

    /// Lease of a pending charge claim, in ms: a charge left `pending` longer than this by a request
    /// that was cancelled or crashed may be taken over by a retry with the same Idempotency-Key
    /// (which then calls the provider again under the same charge id). Keep it well above the slowest
    /// provider call, or a slow but live request gets taken over.
    #[arg(long, env = "CHARGE_PENDING_LEASE_MS", default_value_t = 30_000)]
    pub charge_pending_lease_ms: u64,

    #[command(flatten)]
    pub provider: ProviderConfig,
}

/// The card provider payment-service calls (card-provider, the simulator, in the demo) and the
/// client's policy. The latency model is the simulator's (`card-provider --help`), not ours.
#[derive(Debug, Clone, Args)]
pub struct ProviderConfig {
    /// Base URL of the card provider's API.
    #[arg(
        long,
        env = "PAYMENT_PROVIDER_URL",
        default_value = "http://127.0.0.1:8090"
    )]
    pub provider_url: String,

    /// Per-attempt timeout of provider calls, in ms (changeable at run time: PUT /admin/provider).
    #[arg(long, env = "PAYMENT_PROVIDER_TIMEOUT_MS", default_value_t = 10_000)]
    pub provider_timeout_ms: u64,

    /// Attempts per provider call, the first included (changeable at run time).
    #[arg(long, env = "PAYMENT_PROVIDER_MAX_ATTEMPTS", default_value_t = 3)]
    pub provider_max_attempts: u32,

    /// Pause before each retry of a refused (429/5xx) or failed provider call, in ms. The shipped
    /// 600 ms is scenario `payment.slow`'s bug; 25 is the fix (changeable at run time).
    #[arg(long, env = "PAYMENT_PROVIDER_RETRY_BACKOFF_MS", default_value_t = 600)]
    pub provider_retry_backoff_ms: u64,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            provider_url: "http://127.0.0.1:8090".into(),
            provider_timeout_ms: 10_000,
            provider_max_attempts: 3,
            provider_retry_backoff_ms: 600,
        }
    }
}

impl ProviderConfig {
    /// The client policy these settings start with.
    pub fn policy(&self) -> ProviderPolicy {
        ProviderPolicy {
            timeout_ms: self.provider_timeout_ms,
            max_attempts: self.provider_max_attempts,
            retry_backoff_ms: self.provider_retry_backoff_ms,
        }
    }
}

impl Config {
    /// Loopback, port 0, the given database, the shipped provider policy. Kafka is not used by
    /// payment-service; the parameter keeps the services' shape. Point `provider.provider_url` at
    /// a card-provider (tests start one in-process).
    pub fn for_tests(database_url: &str, _kafka_brokers: Option<&str>) -> Self {
        Self {
            server: ServerArgs::for_tests(16 * 1024),
            admin: AdminArgs::default(),
            database: DatabaseArgs::for_tests(database_url),
            idempotency_wait_ms: 10_000,
            charge_pending_lease_ms: 30_000,
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
                "ADMIN_TOKEN",
                "DATABASE_URL",
                "DATABASE_MAX_CONNECTIONS",
                "IDEMPOTENCY_WAIT_MS",
                "CHARGE_PENDING_LEASE_MS",
                "PAYMENT_PROVIDER_URL",
                "PAYMENT_PROVIDER_TIMEOUT_MS",
                "PAYMENT_PROVIDER_MAX_ATTEMPTS",
                "PAYMENT_PROVIDER_RETRY_BACKOFF_MS",
            ],
        );
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let parsed = Config::try_parse_from(["payment-service"]).unwrap();
        assert_eq!(parsed.provider.policy(), ProviderConfig::default().policy());
        assert_eq!(parsed.server.port, 8082);
        assert_eq!(
            parsed.provider.provider_url,
            ProviderConfig::default().provider_url
        );
        assert!(parsed.provider.policy().validate().is_ok());
    }
}
