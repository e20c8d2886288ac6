//! api-gateway configuration: every setting comes from an environment variable (or the matching
//! flag); `api-gateway --help` lists them all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// Variables read by the telemetry kit rather than by clap; listed so `--help` shows every variable.
pub const TELEMETRY_ENV_HELP: &str = "Telemetry (read by the telemetry kit):
  OTEL_SERVICE_NAME                 service.name (default: api-gateway)
  OTEL_RESOURCE_ATTRIBUTES          extra resource attributes, k=v,k=v (service.version defaults to the crate version)
  OTEL_EXPORTER_OTLP_ENDPOINT       OTLP endpoint (default http://localhost:4318, grpc :4317)
  OTEL_EXPORTER_OTLP_PROTOCOL       http/protobuf (default) | grpc | http/json
  OTEL_TRACES_EXPORTER              otlp (default) | none
  OTEL_METRICS_EXPORTER             otlp (default) | none
  OTEL_LOGS_EXPORTER                otlp (default) | none
  OTEL_TRACES_SAMPLER               e.g. parentbased_traceidratio
  OTEL_TRACES_SAMPLER_ARG           sampler argument, e.g. 0.25
  OTEL_SDK_DISABLED                 true disables all telemetry export
  RUST_LOG                          log filter for stdout and OTLP logs (default: info)
  TRACELAB_SPAN_FILTER              RUST_LOG-style filter for exported spans (default: info)";

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "api-gateway",
    version,
    about = "tracelab api-gateway: authenticates callers, decides each request's scenario (runtime flags or \
             X-Tracelab-Scenario) and forwards orders to order-service",
    after_help = TELEMETRY_ENV_HELP
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0")]
    pub bind_addr: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Base URL of order-service.
    #[arg(
        long,
        env = "ORDER_SERVICE_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub order_service_url: String,
    /// Timeout of each call to order-service, in ms (provider.slow needs ~4.2 s).
    #[arg(long, env = "DOWNSTREAM_TIMEOUT_MS", default_value_t = 15_000)]
    pub downstream_timeout_ms: u64,
    /// Largest accepted request body, in bytes (larger: 413).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
    /// Bearer tokens and the user each one authenticates, `token=user,token=user`. Requests without
    /// a token run as ANONYMOUS_USER; an unknown token gets 401.
    #[arg(
        long,
        env = "API_TOKENS",
        default_value = "demo-token-alice=alice,demo-token-bob=bob"
    )]
    pub api_tokens: String,
    /// The user of requests that send no Authorization header.
    #[arg(long, env = "ANONYMOUS_USER", default_value = "demo-user")]
    pub anonymous_user: String,
    /// Scenario flags enabled at start, `name=percent,...` (e.g. `payment.slow=20`); change them at
    /// run time with PUT /admin/flags.
    #[arg(long, env = "SCENARIO_FLAGS", default_value = "")]
    pub scenario_flags: String,
}

impl Config {
    /// Loopback, port 0; `order_service_url` is what the test points the gateway at.
    pub fn for_tests(order_service_url: &str) -> Self {
        Self {
            bind_addr: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            order_service_url: order_service_url.to_owned(),
            downstream_timeout_ms: 15_000,
            max_body_bytes: 64 * 1024,
            api_tokens: "demo-token-alice=alice,demo-token-bob=bob".to_owned(),
            anonymous_user: "demo-user".to_owned(),
            scenario_flags: String::new(),
        }
    }

    pub fn downstream_timeout(&self) -> Duration {
        Duration::from_millis(self.downstream_timeout_ms)
    }

    /// `API_TOKENS` as token → user.
    pub fn tokens(&self) -> anyhow::Result<HashMap<String, String>> {
        self.api_tokens
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| match entry.split_once('=') {
                Some((token, user)) if !token.trim().is_empty() && !user.trim().is_empty() => {
                    Ok((token.trim().to_owned(), user.trim().to_owned()))
                }
                _ => anyhow::bail!("API_TOKENS entry `{entry}` is not token=user"),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn help_lists_every_variable() {
        let help = Config::command().render_long_help().to_string();
        for var in [
            "BIND_ADDR",
            "PORT",
            "ORDER_SERVICE_URL",
            "DOWNSTREAM_TIMEOUT_MS",
            "MAX_BODY_BYTES",
            "API_TOKENS",
            "ANONYMOUS_USER",
            "SCENARIO_FLAGS",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "RUST_LOG",
        ] {
            assert!(help.contains(var), "--help misses {var}");
        }
    }

    #[test]
    fn parses_tokens() {
        let mut c = Config::for_tests("http://x");
        assert_eq!(c.tokens().unwrap()["demo-token-alice"], "alice");
        c.api_tokens = "broken".into();
        assert!(c.tokens().is_err());
    }
}
