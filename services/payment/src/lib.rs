//! payment-service: `POST /charges` (idempotent per `Idempotency-Key`) and `POST /refunds` through
//! an external card provider over HTTP (card-provider, the simulator, in the demo), with the seeds'
//! `charge` / `stripe.create_charge` spans and the `payment.slow`, `provider.slow` and
//! `payment.declined` scenarios; `GET/PUT /admin/provider` holds their run-time fixes.
//!
//! Thin `main`, fat lib: `Application::build(config)` → `.port()` → `.run_until_stopped(shutdown)`.

pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod metrics;
pub mod provider;
pub mod routes;
pub mod scenario;
pub mod startup;
pub mod store;

pub use config::Config;
pub use startup::Application;
