//! Serde helpers for Go-style durations in component configs (`5s`, `100ms`, `1m30s`).
//!
//! Use as `#[serde(deserialize_with = "crate::component::duration::deserialize")]` on a
//! `std::time::Duration` field (and `deserialize_opt` for `Option<Duration>`).

use std::time::Duration;

use serde::{Deserialize, Deserializer, de::Error};

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Text(String),
    Int(u64),
}

fn convert<E: Error>(raw: Raw) -> Result<Duration, E> {
    match raw {
        Raw::Text(s) => collector_api::duration::parse_go_duration(&s).map_err(E::custom),
        // The OpenTelemetry Collector reads a bare integer as nanoseconds; only 0 is
        // unambiguous enough to accept.
        Raw::Int(0) => Ok(Duration::ZERO),
        Raw::Int(n) => Err(E::custom(format!(
            "invalid duration {n}: a duration needs a unit (expected e.g. 5s, 200ms, 1m)"
        ))),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    convert(Raw::deserialize(d).map_err(|_| {
        D::Error::custom("invalid type: expected a duration such as 5s, 200ms or 1m")
    })?)
}

pub fn deserialize_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    match Option::<Raw>::deserialize(d).map_err(|_| {
        D::Error::custom("invalid type: expected a duration such as 5s, 200ms or 1m")
    })? {
        None => Ok(None),
        Some(raw) => convert(raw).map(Some),
    }
}
