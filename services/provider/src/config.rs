//! card-provider configuration: the simulated world's latency model, all from the environment
//! (`card-provider --help` lists every variable). The defaults reproduce the seeds: a healthy
//! provider answers in ~10 ms; a degraded one (`X-Simulate: slow`) in 3650 ms (seed 002).

use std::time::Duration;

use clap::Parser;
use service_kit::ServerArgs;

/// The variables card-provider reads outside clap (it does not use the telemetry kit): its
/// `--help` and `--print-config` list them.
pub const OTHER_ENV: &[(&str, &str)] = &[("RUST_LOG", "log filter for stdout (default: info)")];

/// card-provider: a Stripe-like charges/refunds API and a mail API for tracelab's services to call
/// over real HTTP. It emits no spans, like any third party.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "card-provider",
    version,
    about,
    long_about = None,
    after_help = service_kit::config::env_help("Also read:", OTHER_ENV),
    mut_arg("port", service_kit::config::default("8090")),
    mut_arg("max_body_bytes", service_kit::config::default("16384"))
)]
pub struct Config {
    // BIND_ADDR, PORT, PORT_FILE, MAX_BODY_BYTES: the services' skeleton, so the launcher starts
    // it like them (port 0, the bound port reported in PORT_FILE).
    #[command(flatten)]
    pub server: ServerArgs,

    /// Charge and refund round trip of a healthy provider, in ms.
    #[arg(long, env = "PROVIDER_LATENCY_MS", default_value_t = 8)]
    pub latency_ms: u64,

    /// Uniform jitter added to every answer, in ms (0..=N).
    #[arg(long, env = "PROVIDER_JITTER_MS", default_value_t = 4)]
    pub jitter_ms: u64,

    /// Charge round trip of a degraded provider (`X-Simulate: slow`), in ms.
    #[arg(long, env = "PROVIDER_SLOW_LATENCY_MS", default_value_t = 3650)]
    pub slow_latency_ms: u64,

    /// Under `X-Simulate: rate_limited`, how many attempts of one Idempotency-Key are refused with
    /// 429 before one goes through.
    #[arg(long, env = "PROVIDER_RATE_LIMITED_ATTEMPTS", default_value_t = 2)]
    pub rate_limited_attempts: u32,

    /// Mail API round trip, in ms.
    #[arg(long, env = "PROVIDER_MAIL_LATENCY_MS", default_value_t = 3)]
    pub mail_latency_ms: u64,

    /// Mail API round trip when it is degraded (`X-Simulate: slow`), in ms.
    #[arg(long, env = "PROVIDER_MAIL_SLOW_LATENCY_MS", default_value_t = 1500)]
    pub mail_slow_latency_ms: u64,
}

impl Default for Config {
    /// The model's defaults on loopback and a free port (what tests want; the binary parses its
    /// own defaults from `--help`'s values).
    fn default() -> Self {
        Self {
            server: ServerArgs::for_tests(16 * 1024),
            latency_ms: 8,
            jitter_ms: 4,
            slow_latency_ms: 3650,
            rate_limited_attempts: 2,
            mail_latency_ms: 3,
            mail_slow_latency_ms: 1500,
        }
    }
}

impl Config {
    /// Loopback and port 0, the production latency model.
    pub fn for_tests() -> Self {
        Self::default()
    }

    fn jitter(&self) -> u64 {
        if self.jitter_ms == 0 {
            0
        } else {
            rand::random_range(0..=self.jitter_ms)
        }
    }

    /// How long a charge or refund takes to answer.
    pub fn charge_latency(&self, slow: bool) -> Duration {
        let base = if slow {
            self.slow_latency_ms
        } else {
            self.latency_ms
        };
        Duration::from_millis(base + self.jitter())
    }

    /// How long a rate-limit refusal takes (the limiter answers before any work).
    pub fn refusal_latency(&self) -> Duration {
        Duration::from_millis(1 + self.jitter() / 2)
    }

    /// How long the mail API takes to accept a message.
    pub fn mail_latency(&self, slow: bool) -> Duration {
        let base = if slow {
            self.mail_slow_latency_ms
        } else {
            self.mail_latency_ms
        };
        Duration::from_millis(base + self.jitter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn help_lists_every_env_variable() {
        let help = Config::command().render_long_help().to_string();
        for var in [
            "BIND_ADDR",
            "PORT",
            "PORT_FILE",
            "MAX_BODY_BYTES",
            "PROVIDER_LATENCY_MS",
            "PROVIDER_JITTER_MS",
            "PROVIDER_SLOW_LATENCY_MS",
            "PROVIDER_RATE_LIMITED_ATTEMPTS",
            "PROVIDER_MAIL_LATENCY_MS",
            "PROVIDER_MAIL_SLOW_LATENCY_MS",
            "RUST_LOG",
        ] {
            assert!(help.contains(var), "--help misses {var}");
        }
    }

    #[test]
    fn parsed_defaults_equal_default() {
        let parsed = Config::try_parse_from(["card-provider"]).unwrap();
        let d = Config::default();
        assert_eq!(parsed.server.port, 8090);
        assert_eq!(parsed.server.max_body_bytes, d.server.max_body_bytes);
        assert_eq!(parsed.slow_latency_ms, d.slow_latency_ms);
        assert_eq!(parsed.rate_limited_attempts, d.rate_limited_attempts);
        assert_eq!(parsed.mail_slow_latency_ms, d.mail_slow_latency_ms);
    }

    #[test]
    fn latency_follows_the_model() {
        let c = Config {
            jitter_ms: 0,
            ..Config::default()
        };
        assert_eq!(c.charge_latency(true), Duration::from_millis(3650));
        assert_eq!(c.charge_latency(false), Duration::from_millis(8));
        assert_eq!(c.mail_latency(true), Duration::from_millis(1500));
    }
}
