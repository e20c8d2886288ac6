//! `card-provider`: parse the configuration, log to stdout (no spans: a third party's traces are not
//! ours to see), serve until Ctrl-C or SIGTERM.

use card_provider::{Application, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = service_kit::config::parse_with(card_provider::config::OTHER_ENV);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let app = Application::build(config).await?;
    app.run_until_stopped(service_kit::shutdown_signal()).await
}
