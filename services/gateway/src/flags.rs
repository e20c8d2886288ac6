//! Scenario flags: which fault each request runs. A request's scenario is the one its
//! `X-Tracelab-Scenario` header forces, else the first enabled flag (catalogue order) whose probability
//! roll hits, else `checkout`. The decision leaves the gateway as W3C baggage `tracelab.scenario=NAME`
//! (see [`apply_scenario`]), so every service acts on the same decision.

use std::collections::BTreeMap;
use std::sync::RwLock;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use contracts::scenario::{self, FlagChanges, FlagState, Flags, Scenario};
use rand::Rng;

use crate::error::ApiError;
use crate::startup::AppState;

pub struct ScenarioFlags {
    flags: RwLock<BTreeMap<Scenario, FlagState>>,
}

impl ScenarioFlags {
    /// All flags off, then `spec` (`name=percent,...`, as in `SCENARIO_FLAGS`) switched on. An off
    /// flag holds the share it runs at once switched on: 100 % until a PUT or the spec sets one
    /// (as `SCENARIO_FLAGS=payment.slow` means 100 %), so `{"enabled":true}` alone switches it on.
    pub fn from_spec(spec: &str) -> anyhow::Result<Self> {
        let mut flags: BTreeMap<Scenario, FlagState> = Scenario::ALL
            .into_iter()
            .filter(|s| *s != Scenario::Checkout)
            .map(|s| {
                (
                    s,
                    FlagState {
                        enabled: false,
                        probability: 100,
                    },
                )
            })
            .collect();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, percent) = entry.split_once('=').unwrap_or((entry, "100"));
            let scenario: Scenario = name.parse()?;
            let probability: u32 = percent
                .trim()
                .parse()
                .map_err(|_| anyhow::anyhow!("SCENARIO_FLAGS: `{percent}` is not a percentage"))?;
            anyhow::ensure!(
                scenario != Scenario::Checkout && probability <= 100,
                "SCENARIO_FLAGS: `{entry}` must name a fault with a percentage 0-100"
            );
            flags.insert(
                scenario,
                FlagState {
                    enabled: true,
                    probability,
                },
            );
        }
        Ok(Self {
            flags: RwLock::new(flags),
        })
    }

    pub fn snapshot(&self) -> Flags {
        self.read()
            .iter()
            .map(|(s, f)| (s.name().to_owned(), *f))
            .collect()
    }

    /// Applies a (partial) update atomically: every entry is checked before any is applied. An
    /// entry without `probability` keeps the flag's current one.
    pub fn update(&self, changes: FlagChanges) -> Result<Flags, ApiError> {
        let mut parsed = Vec::with_capacity(changes.len());
        for (name, change) in changes {
            let scenario: Scenario = name.parse()?;
            if scenario == Scenario::Checkout {
                return Err(ApiError::Validation(
                    "`checkout` is the default path, not a flag".into(),
                ));
            }
            if let Some(p) = change.probability.filter(|p| *p > 100) {
                return Err(ApiError::Validation(format!(
                    "{name}: probability must be 0-100 (percent), got {p}"
                )));
            }
            parsed.push((scenario, change));
        }
        {
            let mut flags = self.flags.write().unwrap_or_else(|e| e.into_inner());
            for (scenario, change) in parsed {
                let flag = flags.entry(scenario).or_default();
                flag.enabled = change.enabled;
                if let Some(p) = change.probability {
                    flag.probability = p;
                }
            }
        }
        Ok(self.snapshot())
    }

    /// The scenario of one request; `roll` yields a uniform 0..100 per enabled flag.
    pub fn decide(&self, forced: Option<Scenario>, mut roll: impl FnMut() -> u32) -> Scenario {
        if let Some(scenario) = forced {
            return scenario;
        }
        self.read()
            .iter()
            .find(|(_, f)| f.enabled && f.probability > 0 && roll() < f.probability)
            .map(|(s, _)| *s)
            .unwrap_or(Scenario::Checkout)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Scenario, FlagState>> {
        self.flags.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Middleware placed OUTSIDE the telemetry layer: it writes the decision into the request's `baggage`
/// header (replacing any `tracelab.scenario` a client sent: the gateway is the edge and owns that key),
/// so the SERVER span's context already carries it and every span and outgoing call beneath inherits it.
/// An invalid `X-Tracelab-Scenario` is left for the handler, which answers 400 inside a traced request.
pub async fn apply_scenario(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.uri().path().starts_with("/orders") {
        let forced = request
            .headers()
            .get(scenario::HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Scenario>().ok());
        let decided = state
            .flags
            .decide(forced, || rand::rng().random_range(0..100));
        let existing: Vec<&str> = request
            .headers()
            .get_all("baggage")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let baggage = with_scenario(&existing, decided.name());
        if let Ok(value) = HeaderValue::from_str(&baggage) {
            request.headers_mut().insert("baggage", value);
        }
    }
    next.run(request).await
}

/// The W3C baggage list with `tracelab.scenario` set to `scenario` and every other entry kept.
pub fn with_scenario(existing: &[&str], scenario: &str) -> String {
    let mut entries: Vec<String> = existing
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| {
            let key = e.split(['=', ';']).next().unwrap_or_default().trim();
            !e.is_empty() && key != scenario::BAGGAGE_KEY
        })
        .map(str::to_owned)
        .collect();
    entries.push(format!("{}={scenario}", scenario::BAGGAGE_KEY));
    entries.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::scenario::FlagChange;

    #[test]
    fn forced_wins_then_enabled_flags_then_checkout() {
        let flags = ScenarioFlags::from_spec("payment.slow=100").unwrap();
        assert_eq!(
            flags.decide(Some(Scenario::PaymentDeclined), || 0),
            Scenario::PaymentDeclined
        );
        assert_eq!(flags.decide(None, || 99), Scenario::PaymentSlow);
        let flags = ScenarioFlags::from_spec("payment.slow=0").unwrap();
        assert_eq!(flags.decide(None, || 0), Scenario::Checkout);
        let flags = ScenarioFlags::from_spec("").unwrap();
        assert_eq!(flags.decide(None, || 0), Scenario::Checkout);
    }

    #[test]
    fn probability_is_a_percentage() {
        let flags = ScenarioFlags::from_spec("provider.slow=30").unwrap();
        let hits = (0..100u32)
            .filter(|i| flags.decide(None, || *i) == Scenario::ProviderSlow)
            .count();
        assert_eq!(hits, 30);
    }

    #[test]
    fn rejects_bad_specs_and_updates() {
        assert!(ScenarioFlags::from_spec("nope=10").is_err());
        assert!(ScenarioFlags::from_spec("payment.slow=101").is_err());
        assert!(ScenarioFlags::from_spec("checkout=10").is_err());
        let flags = ScenarioFlags::from_spec("").unwrap();
        let bad = FlagChanges::from([(
            "payment.slow".to_owned(),
            FlagChange {
                enabled: true,
                probability: Some(150),
            },
        )]);
        assert!(matches!(flags.update(bad), Err(ApiError::Validation(_))));
        let unknown = FlagChanges::from([(
            "payment.fast".to_owned(),
            FlagChange {
                enabled: true,
                probability: None,
            },
        )]);
        assert!(matches!(
            flags.update(unknown),
            Err(ApiError::UnknownScenario(_))
        ));
        assert!(flags.snapshot().values().all(|f| !f.enabled));
    }

    fn change(name: &str, enabled: bool, probability: Option<u32>) -> FlagChanges {
        FlagChanges::from([(
            name.to_owned(),
            FlagChange {
                enabled,
                probability,
            },
        )])
    }

    #[test]
    fn an_update_without_probability_keeps_the_share() {
        let flags = ScenarioFlags::from_spec("payment.slow=25").unwrap();
        let off = flags.update(change("payment.slow", false, None)).unwrap();
        assert_eq!(
            off["payment.slow"],
            FlagState {
                enabled: false,
                probability: 25
            },
            "switched off, share kept"
        );
        assert_eq!(flags.decide(None, || 0), Scenario::Checkout);
        let on = flags.update(change("payment.slow", true, None)).unwrap();
        assert_eq!(
            on["payment.slow"].probability, 25,
            "back on at the same share"
        );
        assert_eq!(flags.decide(None, || 24), Scenario::PaymentSlow);
        assert_eq!(flags.decide(None, || 25), Scenario::Checkout);
        // A flag never set runs at 100 % once switched on without a share.
        flags.update(change("payment.slow", false, None)).unwrap();
        let declined = flags
            .update(change("payment.declined", true, None))
            .unwrap();
        assert_eq!(declined["payment.declined"].probability, 100);
        assert_eq!(flags.decide(None, || 99), Scenario::PaymentDeclined);
        let set = flags
            .update(change("payment.declined", true, Some(0)))
            .unwrap();
        assert_eq!(set["payment.declined"].probability, 0);
        assert_eq!(flags.decide(None, || 0), Scenario::Checkout);
    }

    #[test]
    fn baggage_keeps_other_entries_and_replaces_ours() {
        assert_eq!(with_scenario(&[], "checkout"), "tracelab.scenario=checkout");
        assert_eq!(
            with_scenario(
                &["userId=alice, tracelab.scenario=payment.slow;prop=1", "x=1"],
                "checkout"
            ),
            "userId=alice,x=1,tracelab.scenario=checkout"
        );
    }
}
