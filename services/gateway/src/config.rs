//! api-gateway configuration: every setting comes from an environment variable (or the matching
//! flag); `api-gateway --help` lists them all.

use std::collections::HashMap;
use std::time::Duration;

use service_kit::{AdminArgs, ServerArgs};

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "api-gateway",
    version,
    about = "tracelab api-gateway: authenticates callers, decides each request's scenario (runtime flags or \
             X-Tracelab-Scenario) and forwards orders to order-service",
    after_help = service_kit::config::telemetry_env_help(),
    mut_arg("port", service_kit::config::default("8080"))
)]
pub struct Config {
    // BIND_ADDR, PORT, PORT_FILE, MAX_BODY_BYTES.
    #[command(flatten)]
    pub server: ServerArgs,
    // ADMIN_TOKEN: the bearer token of the /admin routes.
    #[command(flatten)]
    pub admin: AdminArgs,
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
    /// Bearer tokens and the user each one authenticates, `token=user,token=user`. Requests without
    /// a token run as ANONYMOUS_USER; an unknown token gets 401.
    #[arg(
        long,
        env = "API_TOKENS",
        hide_env_values = true,
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
            server: ServerArgs::for_tests(64 * 1024),
            admin: AdminArgs::default(),
            order_service_url: order_service_url.to_owned(),
            downstream_timeout_ms: 15_000,
            api_tokens: "demo-token-alice=alice,demo-token-bob=bob".to_owned(),
            anonymous_user: "demo-user".to_owned(),
            scenario_flags: String::new(),
        }
    }

    pub fn downstream_timeout(&self) -> Duration {
        Duration::from_millis(self.downstream_timeout_ms)
    }

    /// What a start checks beyond clap (`SCENARIO_FLAGS` and `API_TOKENS` parse), for
    /// `--print-config` (`service_kit::config::parse_checked`).
    pub fn check(&self) -> anyhow::Result<()> {
        crate::flags::ScenarioFlags::from_spec(&self.scenario_flags)?;
        self.tokens()?;
        Ok(())
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
        service_kit::config::assert_help_lists(
            Config::command(),
            &[
                "ADMIN_TOKEN",
                "ORDER_SERVICE_URL",
                "DOWNSTREAM_TIMEOUT_MS",
                "API_TOKENS",
                "ANONYMOUS_USER",
                "SCENARIO_FLAGS",
            ],
        );
    }

    #[test]
    fn parses_tokens() {
        let mut c = Config::for_tests("http://x");
        assert_eq!(c.tokens().unwrap()["demo-token-alice"], "alice");
        c.api_tokens = "broken".into();
        assert!(c.tokens().is_err());
    }
}
