//! api-gateway: the edge of the checkout system. It authenticates callers, decides each request's
//! scenario (runtime flags or `X-Tracelab-Scenario`) and sends that decision downstream as W3C
//! baggage, validates orders and forwards them to order-service. `main.rs` only parses the config,
//! initialises telemetry and runs [`Application`].

pub mod auth;
pub mod config;
pub mod downstream;
pub mod error;
pub mod flags;
pub mod routes;
pub mod startup;

pub use config::Config;
pub use startup::Application;
