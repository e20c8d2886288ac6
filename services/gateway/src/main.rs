//! api-gateway binary: config from the environment, telemetry, then the application until Ctrl-C or
//! SIGTERM.

use api_gateway::{Application, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = service_kit::config::parse_checked(Config::check);
    let _telemetry = telemetry::init("api-gateway", env!("CARGO_PKG_VERSION"))?;
    let app = Application::build(config).await?;
    app.run_until_stopped(service_kit::shutdown_signal()).await
}
