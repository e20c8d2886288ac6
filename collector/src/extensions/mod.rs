//! Extensions: components outside the pipelines (health_check).

pub mod health_check;
