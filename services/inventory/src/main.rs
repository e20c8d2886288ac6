//! inventory-service binary: configuration from the environment, telemetry, then the application.

use inventory_service::{Application, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: Config = service_kit::config::parse();
    let _telemetry = telemetry::init("inventory-service", env!("CARGO_PKG_VERSION"))?;
    let app = Application::build(config).await?;
    app.run_until_stopped(service_kit::shutdown_signal()).await
}
