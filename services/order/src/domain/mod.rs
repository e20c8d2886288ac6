//! The checkout domain: validation and pricing rules, the order repository (SQL), and the
//! `process_order` orchestration (charge, reserve, compensate, confirm + outbox).

pub mod checkout;
pub mod idempotency;
pub mod repository;
pub mod validation;
