//! inventory-service: `POST /reservations` (one transaction, 409 `out_of_stock`, idempotent per
//! order) and the `orders` Kafka consumer (`commit_reservation`, `send_confirmation_email`,
//! idempotent per event), with the `inventory.slow_query`, `inventory.out_of_stock` and
//! `kafka.consumer_lag` scenarios.
//!
//! Thin `main`, fat lib: `Application::build(config)` → `.port()` → `.run_until_stopped(shutdown)`.

pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod kafka;
pub mod mail;
pub mod metrics;
pub mod routes;
pub mod scenario;
pub mod startup;
pub mod store;

pub use config::Config;
pub use startup::Application;
