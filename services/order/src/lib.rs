//! order-service: places orders (validate → price → store → charge → reserve → confirm) and publishes
//! `order.placed` through a transactional outbox. `main.rs` only parses the config, initialises
//! telemetry and runs [`Application`].

pub mod clients;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod outbox;
pub mod routes;
pub mod startup;

pub use config::Config;
pub use startup::Application;
