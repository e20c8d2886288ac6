//! `viewer`: serves the trace viewer on `PORT` (3000), reading the collector's query API at
//! `QUERY_API_URL`. All of it lives in the library (`viewer::server`).

#![recursion_limit = "256"]

use viewer::server::{Application, Config};

#[tokio::main]
async fn main() {
    // The viewer takes no other arguments: its settings are environment variables.
    if std::env::args().skip(1).any(|a| a == "--print-config") {
        match Config::print_config() {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("viewer: {e}");
                std::process::exit(2);
            }
        }
        return;
    }
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("viewer: {e}");
            std::process::exit(2);
        }
    };
    let query = config.query_api_url.clone();
    let app = match Application::build(config).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("viewer: {e}");
            std::process::exit(1);
        }
    };
    tracing::info!(port = app.port(), query_api = %query, "viewer listening");
    if let Err(e) = app.run_until_stopped(shutdown_signal()).await {
        eprintln!("viewer: {e}");
        std::process::exit(1);
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
