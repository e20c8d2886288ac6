//! Inventory business logic: stock reservations (HTTP) and order events (Kafka).

pub mod events;
pub mod reservation;
