//! The scenario mix (`--mix checkout=90,payment.slow=5,payment.declined=5`): integer weights per
//! scenario of the catalogue (`contracts::Scenario`), and what each scenario's expected answer is.
//!
//! Expected statuses are not errors of the load tool: a declined card answers 402 by design.
//! An error is an answer the scenario does not explain (a 500, a 502, a 201 for a declined card)
//! or no answer at all.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use contracts::scenario::Scenario;

/// The mix `loadgen` uses when `--mix` is not given (the example of the docs).
pub const DEFAULT_MIX: &str = "checkout=90,payment.slow=5,payment.declined=5";

/// Weighted scenarios, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    entries: Vec<(Scenario, u32)>,
    total: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    #[error("--mix is empty: give NAME=WEIGHT pairs, e.g. {DEFAULT_MIX}")]
    Empty,
    #[error("--mix entry `{0}` is not NAME=WEIGHT (e.g. payment.slow=5)")]
    NotAPair(String),
    #[error("--mix entry `{entry}`: {source}")]
    UnknownScenario {
        entry: String,
        source: contracts::scenario::UnknownScenario,
    },
    #[error("--mix entry `{0}`: the weight must be a whole number from 0 to 1000000")]
    BadWeight(String),
    #[error("--mix names `{0}` twice")]
    Duplicate(String),
    #[error("--mix gives every scenario weight 0: nothing to send")]
    AllZero,
}

impl FromStr for Mix {
    type Err = MixError;
    fn from_str(s: &str) -> Result<Self, MixError> {
        let mut entries: Vec<(Scenario, u32)> = Vec::new();
        for raw in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, weight) = raw
                .split_once('=')
                .ok_or_else(|| MixError::NotAPair(raw.into()))?;
            let scenario: Scenario =
                name.trim()
                    .parse()
                    .map_err(|source| MixError::UnknownScenario {
                        entry: raw.into(),
                        source,
                    })?;
            let weight: u32 = weight
                .trim()
                .parse()
                .ok()
                .filter(|w| *w <= 1_000_000)
                .ok_or_else(|| MixError::BadWeight(raw.into()))?;
            if entries.iter().any(|(s, _)| *s == scenario) {
                return Err(MixError::Duplicate(scenario.name().into()));
            }
            entries.push((scenario, weight));
        }
        if entries.is_empty() {
            return Err(MixError::Empty);
        }
        let total = entries.iter().map(|(_, w)| w).sum();
        if total == 0 {
            return Err(MixError::AllZero);
        }
        Ok(Mix { entries, total })
    }
}

impl Default for Mix {
    fn default() -> Self {
        DEFAULT_MIX
            .parse()
            .expect("DEFAULT_MIX parses (unit-tested)")
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .entries
            .iter()
            .map(|(s, w)| format!("{}={w}", s.name()))
            .collect();
        f.write_str(&parts.join(","))
    }
}

impl Mix {
    /// The scenario drawn for `ticket` in `0..total()`: weights laid end to end, in order.
    pub fn pick(&self, ticket: u32) -> Scenario {
        let mut left = ticket % self.total;
        for (s, w) in &self.entries {
            if left < *w {
                return *s;
            }
            left -= w;
        }
        unreachable!("ticket < total")
    }

    pub fn total(&self) -> u32 {
        self.total
    }

    /// Scenarios with a weight above 0, in the order given.
    pub fn scenarios(&self) -> impl Iterator<Item = Scenario> + '_ {
        self.entries.iter().filter(|(_, w)| *w > 0).map(|(s, _)| *s)
    }

    /// `{"checkout": 90, ...}` for the summary.
    pub fn weights(&self) -> BTreeMap<String, u32> {
        self.entries
            .iter()
            .map(|(s, w)| (s.name().to_string(), *w))
            .collect()
    }
}

/// The HTTP statuses the gateway answers for `scenario` when the platform works as designed.
///
/// `provider.slow` answers 201 with payment's default 10 s provider timeout, and 504
/// (`provider_timeout`) once the documented fix (`timeout_ms: 1000`) is applied: both are the
/// scenario working, not the load tool failing.
pub fn expected_statuses(scenario: Scenario) -> &'static [u16] {
    match scenario {
        Scenario::PaymentDeclined => &[402],
        Scenario::InventoryOutOfStock => &[409],
        Scenario::ProviderSlow => &[201, 504],
        Scenario::Checkout
        | Scenario::PaymentSlow
        | Scenario::InventorySlowQuery
        | Scenario::PropagationBroken
        | Scenario::KafkaConsumerLag => &[201],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_mix_parses_and_round_trips() {
        let m = Mix::default();
        assert_eq!(m.total(), 100);
        assert_eq!(m.to_string(), DEFAULT_MIX);
        assert_eq!(m.weights()["payment.slow"], 5);
    }

    #[test]
    fn tickets_map_onto_weights_in_order() {
        let m: Mix = "checkout=2,payment.declined=1".parse().unwrap();
        let picks: Vec<_> = (0..3).map(|t| m.pick(t)).collect();
        assert_eq!(
            picks,
            [
                Scenario::Checkout,
                Scenario::Checkout,
                Scenario::PaymentDeclined
            ]
        );
    }

    #[test]
    fn bad_mixes_name_the_entry() {
        let e = "checkout=90,payment.slwo=5".parse::<Mix>().unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("payment.slwo=5") && msg.contains("known:"),
            "{msg}"
        );
        assert!(matches!(
            "checkout".parse::<Mix>(),
            Err(MixError::NotAPair(_))
        ));
        assert!(matches!(
            "checkout=-1".parse::<Mix>(),
            Err(MixError::BadWeight(_))
        ));
        assert!(matches!(
            "checkout=1,checkout=2".parse::<Mix>(),
            Err(MixError::Duplicate(_))
        ));
        assert_eq!("checkout=0".parse::<Mix>(), Err(MixError::AllZero));
        assert_eq!(" , ".parse::<Mix>(), Err(MixError::Empty));
    }

    #[test]
    fn zero_weights_are_never_picked() {
        let m: Mix = "checkout=0,payment.slow=3".parse().unwrap();
        assert!((0..30).all(|t| m.pick(t) == Scenario::PaymentSlow));
        assert_eq!(m.scenarios().collect::<Vec<_>>(), [Scenario::PaymentSlow]);
    }
}
