//! The viewer's server: configuration from the environment, the axum router (Leptos pages, server
//! functions, static files under `/pkg`, `/go` and health), and graceful shutdown — the same
//! `Application::build` → `port()` → `run_until_stopped` shape as the services.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::extract::Query;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};

use crate::app::{App, shell};

/// What the viewer reads from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `QUERY_API_URL`: the collector's query API (Jaeger routes + `/api/v1`).
    pub query_api_url: String,
    /// `BIND_ADDR` (default 0.0.0.0) and `PORT` (default 3000; 0 picks a free port).
    pub bind: SocketAddr,
    /// `LEPTOS_SITE_ROOT`: where `pkg/` (wasm, JS, CSS) and `favicon.svg` are. Default: `site/`
    /// beside the binary's `target/<profile>/` directory, i.e. `target/site`, where
    /// `viewer/scripts/build-assets.sh` puts them.
    pub site_root: PathBuf,
    /// `GATEWAY_URL`: the gateway, whose `/admin/flags` the flags panel reads and switches. Unset:
    /// the panel says it is not connected.
    pub gateway_url: Option<String>,
    /// `INVENTORY_URL`: inventory-service, whose run-time fixes (`/admin/slow-query`,
    /// `/admin/consumer`) the panel applies.
    pub inventory_url: Option<String>,
    /// `ADMIN_TOKEN`: sent as `Authorization: Bearer` to those admin routes; never to the browser.
    pub admin_token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name}={value:?} is not valid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
    #[error(
        "the viewer's assets are missing: {0} does not exist. Build them with `make viewer` (viewer/scripts/build-assets.sh)"
    )]
    NoAssets(String),
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let http_url = |name: &'static str, value: String| {
            if value.starts_with("http://") || value.starts_with("https://") {
                Ok(value)
            } else {
                Err(ConfigError::Invalid {
                    name,
                    value,
                    reason: "expected an http:// URL".into(),
                })
            }
        };
        let query_api_url = http_url(
            "QUERY_API_URL",
            var("QUERY_API_URL").unwrap_or_else(|| "http://127.0.0.1:16686".into()),
        )?;
        let gateway_url = var("GATEWAY_URL")
            .map(|v| http_url("GATEWAY_URL", v))
            .transpose()?;
        let inventory_url = var("INVENTORY_URL")
            .map(|v| http_url("INVENTORY_URL", v))
            .transpose()?;
        let admin_token = var("ADMIN_TOKEN").filter(|t| !t.trim().is_empty());
        let host = var("BIND_ADDR").unwrap_or_else(|| "0.0.0.0".into());
        let port = var("PORT").unwrap_or_else(|| "3000".into());
        let bind: SocketAddr =
            format!("{host}:{port}")
                .parse()
                .map_err(|e: std::net::AddrParseError| ConfigError::Invalid {
                    name: "BIND_ADDR/PORT",
                    value: format!("{host}:{port}"),
                    reason: e.to_string(),
                })?;
        let site_root = var("LEPTOS_SITE_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(default_site_root);
        Ok(Self {
            query_api_url,
            bind,
            site_root,
            gateway_url,
            inventory_url,
            admin_token,
        })
    }
}

/// Every variable the viewer reads, with its default (`None`: no default, the setting is off when
/// unset): [`Config::from_env`]'s, and `RUST_LOG` (the log filter `main` installs).
/// `--print-config` lists exactly these.
pub fn env_vars() -> [(&'static str, Option<String>); 8] {
    [
        ("QUERY_API_URL", Some("http://127.0.0.1:16686".to_owned())),
        ("BIND_ADDR", Some("0.0.0.0".to_owned())),
        ("PORT", Some("3000".to_owned())),
        (
            "LEPTOS_SITE_ROOT",
            Some(default_site_root().display().to_string()),
        ),
        ("GATEWAY_URL", None),
        ("INVENTORY_URL", None),
        ("ADMIN_TOKEN", None),
        ("RUST_LOG", Some("info".to_owned())),
    ]
}

/// Variables whose value `--print-config` shows as `***`.
const SECRETS: [&str; 1] = ["ADMIN_TOKEN"];

/// One line of `--print-config`: the services' shape (service-kit's `print_config`), without flags.
#[derive(Debug, serde::Serialize)]
struct Setting {
    env: &'static str,
    flag: Option<&'static str>,
    value: Option<String>,
    source: &'static str,
}

impl Config {
    /// `viewer --print-config`: checks the environment as a start would ([`Config::from_env`]'s
    /// errors), then renders every variable of [`env_vars`] with its value and source (`env`, or
    /// `default` when unset or empty, which the viewer treats alike; `unset` with a null value for
    /// a variable without default) as the services' JSON, the admin token as `***`.
    pub fn print_config() -> Result<String, ConfigError> {
        Self::from_env()?;
        let lines: Vec<String> = env_vars()
            .into_iter()
            .map(|(env, default)| {
                let set = std::env::var(env).ok().filter(|v| !v.is_empty()).map(|v| {
                    if SECRETS.contains(&env) {
                        "***".to_owned()
                    } else {
                        v
                    }
                });
                let source = match (&set, &default) {
                    (Some(_), _) => "env",
                    (None, Some(_)) => "default",
                    (None, None) => "unset",
                };
                let setting = Setting {
                    env,
                    flag: None,
                    source,
                    value: set.or(default),
                };
                format!(
                    "   {}",
                    serde_json::to_string(&setting).expect("serializes")
                )
            })
            .collect();
        Ok(format!(
            "{{\"binary\":\"viewer\",\n \"settings\":[\n{}\n ]}}",
            lines.join(",\n")
        ))
    }
}

/// `target/site` for a binary in `target/<profile>/viewer`.
fn default_site_root() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|t| t.join("site")))
        .unwrap_or_else(|| PathBuf::from("target/site"))
}

pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let pkg = config.site_root.join("pkg").join("viewer.js");
        if !pkg.is_file() {
            return Err(Box::new(ConfigError::NoAssets(pkg.display().to_string())));
        }
        crate::api::backend::configure(&config.query_api_url);
        if config.admin_token.is_none() && config.gateway_url.is_some() {
            tracing::warn!(
                "ADMIN_TOKEN is not set: the flags panel calls the admin routes without a token (fine only while they are open)"
            );
        }
        crate::flags::admin::configure(crate::flags::admin::Targets {
            gateway: config.gateway_url.clone(),
            inventory: config.inventory_url.clone(),
            token: config.admin_token.clone(),
        });
        let options = LeptosOptions::builder()
            .output_name("viewer")
            .site_root(config.site_root.display().to_string())
            .site_pkg_dir("pkg")
            .site_addr(config.bind)
            .build();
        let routes = generate_route_list(App);
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/go", get(go))
            .leptos_routes(&options, routes, {
                let options = options.clone();
                move || shell(options.clone())
            })
            .fallback(leptos_axum::file_and_error_handler(shell))
            .with_state(options);
        let listener = tokio::net::TcpListener::bind(config.bind).await?;
        Ok(Self { listener, router })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
    }
}

/// `/go?traceID=…` (the navigation bar's box): to the trace page, or back to search with a message.
async fn go(Query(q): Query<std::collections::HashMap<String, String>>) -> impl IntoResponse {
    let raw = q.get("traceID").map(|s| s.trim()).unwrap_or_default();
    match collector_api::normalize_trace_id(raw) {
        Ok(id) => Redirect::to(&format!("/trace/{id}")),
        Err(_) => Redirect::to("/search"),
    }
}
