//! The settings every service shares, as clap argument groups a service's `Config` flattens:
//!
//! ```text
//! #[derive(clap::Parser)]
//! #[command(
//!     name = "order-service",
//!     after_help = service_kit::config::telemetry_env_help(),
//!     // Per-service defaults of the shared arguments:
//!     mut_arg("port", service_kit::config::default("8081")),
//!     mut_arg("database_url", service_kit::config::default("sqlite:data/order-service.db?mode=rwc")),
//! )]
//! pub struct Config {
//!     #[command(flatten)]
//!     pub server: service_kit::ServerArgs,
//!     #[command(flatten)]
//!     pub database: service_kit::DatabaseArgs,
//!     // ... the service's own settings
//! }
//! ```
//!
//! One name per setting across the services: `DATABASE_MAX_CONNECTIONS`, not a per-service
//! spelling. The port and the database URL have no default here because each service has its
//! own (8080–8083, `data/<service>.db`); a service without `mut_arg` for them makes them required.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use sqlx::AnyPool;
use sqlx::migrate::Migrator;

pub use crate::print_config::{parse, parse_checked, parse_with};

/// The variables read by the telemetry kit (and the OpenTelemetry SDK through it) rather than by
/// clap, one per line, for a service's `after_help`, so `--help` lists every variable the process
/// reads. Generated from [`telemetry::config::ENV_VARS`], the list `--print-config` prints too.
pub fn telemetry_env_help() -> String {
    env_help(
        "Telemetry (read by the telemetry kit and the OpenTelemetry SDK):",
        telemetry::config::ENV_VARS,
    )
}

/// `title`, then `  NAME  what` per variable (a long name gets its description on the next line).
pub fn env_help(title: &str, vars: &[(&str, &str)]) -> String {
    const WIDTH: usize = 36;
    let mut help = title.to_owned();
    for (name, what) in vars {
        if name.len() + 2 <= WIDTH {
            help.push_str(&format!("\n  {name:<WIDTH$}{what}"));
        } else {
            help.push_str(&format!("\n  {name}\n  {:WIDTH$}{what}", ""));
        }
    }
    help
}

/// The variables every service's `--help` lists whatever else it reads: [`ServerArgs`]'s and, from
/// [`telemetry_env_help`], the two a reader looks for first.
pub const SHARED_HELP_VARIABLES: [&str; 6] = [
    "BIND_ADDR",
    "PORT",
    "PORT_FILE",
    "MAX_BODY_BYTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "RUST_LOG",
];

/// For each service's `--help` test: panics unless the long help of `command` names every one of
/// [`SHARED_HELP_VARIABLES`], of `own` (the service's own variables) and of the telemetry kit's
/// [`telemetry::config::ENV_VARS`].
pub fn assert_help_lists(mut command: clap::Command, own: &[&str]) {
    let help = command.render_long_help().to_string();
    let telemetry = telemetry::config::ENV_VARS.iter().map(|(name, _)| name);
    for var in SHARED_HELP_VARIABLES.iter().chain(own).chain(telemetry) {
        assert!(help.contains(var), "--help misses {var}");
    }
}

/// For `#[command(mut_arg("port", default("8081")))]`: gives a shared argument the service's own
/// default (shown in `--help`), which also makes it optional.
pub fn default(value: &'static str) -> impl FnOnce(clap::Arg) -> clap::Arg {
    move |arg| arg.default_value(value).required(false)
}

/// Where and how the HTTP server listens.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, env = "BIND_ADDR", default_value = "0.0.0.0")]
    pub bind_addr: IpAddr,

    /// Port to listen on (0 picks a free one; see PORT_FILE to learn which).
    #[arg(long, env = "PORT")]
    pub port: u16,

    /// After binding, write the bound port (decimal, one line) to this file, atomically (a
    /// temporary file renamed into place): how a launcher that passed PORT=0 learns the port.
    #[arg(long, env = "PORT_FILE")]
    pub port_file: Option<PathBuf>,

    /// Largest accepted request body, in bytes (larger: 413).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,
}

impl ServerArgs {
    /// Loopback, port 0 (the OS picks), no port file: what in-process tests want.
    pub fn for_tests(max_body_bytes: usize) -> Self {
        Self {
            bind_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            port_file: None,
            max_body_bytes,
        }
    }
}

/// The service's database.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// sqlx URL: `sqlite:...` (a file with ?mode=rwc, or file:NAME?mode=memory&cache=shared) or
    /// `postgres://...`.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: String,

    /// Maximum pooled database connections.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    pub database_max_connections: u32,
}

impl DatabaseArgs {
    /// The given URL and a small pool, for tests.
    pub fn for_tests(database_url: &str) -> Self {
        Self {
            database_url: database_url.to_owned(),
            database_max_connections: 4,
        }
    }

    /// Opens the pool (SQLite or PostgreSQL by URL) and runs `service`'s migrations.
    pub async fn connect(&self, migrator: &Migrator, service: &str) -> anyhow::Result<AnyPool> {
        storage::connect(
            &self.database_url,
            self.database_max_connections,
            migrator,
            service,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Debug, Parser)]
    #[command(
        name = "demo-service",
        mut_arg("port", default("8089")),
        mut_arg("database_url", default("sqlite:data/demo.db?mode=rwc")),
        after_help = telemetry_env_help()
    )]
    struct Demo {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        database: DatabaseArgs,
    }

    #[test]
    fn services_set_their_own_defaults() {
        let d = Demo::try_parse_from(["demo-service"]).unwrap();
        assert_eq!(d.server.port, 8089);
        assert_eq!(d.server.port_file, None);
        assert_eq!(d.server.max_body_bytes, 64 * 1024);
        assert_eq!(d.database.database_url, "sqlite:data/demo.db?mode=rwc");
        assert_eq!(d.database.database_max_connections, 8);
        let d =
            Demo::try_parse_from(["demo-service", "--port", "0", "--port-file", "/tmp/p"]).unwrap();
        assert_eq!(d.server.port, 0);
        assert_eq!(d.server.port_file, Some(PathBuf::from("/tmp/p")));
    }

    #[test]
    fn help_lists_the_shared_variables() {
        assert_help_lists(
            Demo::command(),
            &["DATABASE_URL", "DATABASE_MAX_CONNECTIONS"],
        );
        let help = Demo::command().render_long_help().to_string();
        assert!(help.contains("8089"), "the service's port default is shown");
    }
}
