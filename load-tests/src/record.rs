//! What each request came back with, and the running tallies (HdrHistogram per scenario, status
//! codes) that the progress line and the end-of-run summary read.
//!
//! Latency is measured from the request's *scheduled* time, not from when it left: when the
//! concurrency cap holds a request back, the wait counts against the system, as a user arriving on
//! time would have felt it (the coordinated-omission correction of wrk2 and HdrHistogram).

use std::collections::BTreeMap;
use std::time::Duration;

use contracts::scenario::Scenario;
use hdrhistogram::Histogram;

use crate::mix::expected_statuses;

/// Why a request got no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TransportError {
    Connect,
    Timeout,
    /// The connection broke, or the body could not be read.
    Other,
}

impl TransportError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Other => "io",
        }
    }

    pub fn of(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::Timeout
        } else if e.is_connect() {
            Self::Connect
        } else {
            Self::Other
        }
    }
}

/// One finished request.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub index: u64,
    pub scenario: Scenario,
    /// How late it left after its scheduled time (0 unless the concurrency cap held it).
    pub start_delay: Duration,
    /// Scheduled time → last byte of the response.
    pub latency: Duration,
    pub result: Result<u16, TransportError>,
    /// The gateway's `X-Trace-Id` header.
    pub trace_id: Option<String>,
}

impl Outcome {
    /// An answer the scenario explains.
    pub fn is_expected(&self) -> bool {
        matches!(self.result, Ok(s) if expected_statuses(self.scenario).contains(&s))
    }
}

/// HdrHistogram of microseconds, 1 µs to 1 h at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, 3_600_000_000)
}

/// Tallies of one scenario.
#[derive(Debug, Clone)]
pub struct ScenarioTally {
    pub latency: Histogram<u64>,
    pub statuses: BTreeMap<u16, u64>,
    pub transport: BTreeMap<TransportError, u64>,
    pub expected: u64,
    pub unexpected: u64,
}

impl Default for ScenarioTally {
    fn default() -> Self {
        Self {
            latency: histogram(),
            statuses: BTreeMap::new(),
            transport: BTreeMap::new(),
            expected: 0,
            unexpected: 0,
        }
    }
}

/// Every tally of a run. Updated once per finished request under one lock: a few hundred
/// nanoseconds, far below a request's cost at any rate a laptop sends.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub all: Histogram<u64>,
    pub by_scenario: BTreeMap<Scenario, ScenarioTally>,
    pub completed: u64,
    pub errors: u64,
    /// Requests the concurrency cap held back past their scheduled time.
    pub late_starts: u64,
    pub max_start_delay: Duration,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            all: histogram(),
            by_scenario: BTreeMap::new(),
            completed: 0,
            errors: 0,
            late_starts: 0,
            max_start_delay: Duration::ZERO,
        }
    }
}

/// A request counts as held back when it left more than this after its due time (timer
/// granularity and scheduling noise stay below it).
pub const LATE_START: Duration = Duration::from_millis(5);

impl Recorder {
    pub fn record(&mut self, o: &Outcome) {
        let us = micros(o.latency);
        self.all.saturating_record(us);
        self.completed += 1;
        if o.start_delay > LATE_START {
            self.late_starts += 1;
        }
        self.max_start_delay = self.max_start_delay.max(o.start_delay);
        let t = self.by_scenario.entry(o.scenario).or_default();
        t.latency.saturating_record(us);
        match o.result {
            Ok(s) => *t.statuses.entry(s).or_default() += 1,
            Err(e) => *t.transport.entry(e).or_default() += 1,
        }
        if o.is_expected() {
            t.expected += 1;
        } else {
            t.unexpected += 1;
            self.errors += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(scenario: Scenario, result: Result<u16, TransportError>, ms: u64) -> Outcome {
        Outcome {
            index: 0,
            scenario,
            start_delay: Duration::ZERO,
            latency: Duration::from_millis(ms),
            result,
            trace_id: None,
        }
    }

    #[test]
    fn expected_statuses_are_not_errors_and_unexplained_ones_are() {
        let mut r = Recorder::default();
        r.record(&outcome(Scenario::PaymentDeclined, Ok(402), 10));
        r.record(&outcome(Scenario::Checkout, Ok(201), 20));
        r.record(&outcome(Scenario::InventoryOutOfStock, Ok(409), 20));
        r.record(&outcome(Scenario::ProviderSlow, Ok(504), 1000));
        assert_eq!(r.errors, 0);
        r.record(&outcome(Scenario::PaymentDeclined, Ok(201), 10));
        r.record(&outcome(Scenario::Checkout, Ok(500), 10));
        r.record(&outcome(
            Scenario::Checkout,
            Err(TransportError::Timeout),
            30_000,
        ));
        assert_eq!(r.errors, 3);
        assert_eq!(r.completed, 7);
        let c = &r.by_scenario[&Scenario::Checkout];
        assert_eq!((c.expected, c.unexpected), (1, 2));
        assert_eq!(c.transport[&TransportError::Timeout], 1);
        assert_eq!(r.all.max(), r.all.highest_equivalent(30_000_000));
    }
}
