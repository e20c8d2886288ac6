//! Payment business logic: card tokens, charges (idempotent per key) and refunds (one per charge).

pub mod card;
pub mod charge;
pub mod refund;
