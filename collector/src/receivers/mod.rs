//! Receivers: components that accept telemetry from the outside (OTLP gRPC and HTTP).

pub mod otlp;
