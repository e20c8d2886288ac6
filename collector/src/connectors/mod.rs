//! Connectors: exporter of one pipeline and receiver of another (e.g. spanmetrics: traces -> metrics).

pub mod spanmetrics;
