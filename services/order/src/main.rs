//! order-service binary: config from the environment, telemetry, then the application until Ctrl-C or
//! SIGTERM.

use order_service::{Application, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = service_kit::config::parse();
    let _telemetry = telemetry::init("order-service", env!("CARGO_PKG_VERSION"))?;
    let app = Application::build(config).await?;
    app.run_until_stopped(service_kit::shutdown_signal()).await
}
