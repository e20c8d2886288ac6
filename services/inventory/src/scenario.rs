//! The active scenario of the current request, as decided by the gateway and carried as W3C baggage
//! (`tracelab.scenario`); absent or unknown means plain `checkout`.

use contracts::scenario::{ATTRIBUTE, BAGGAGE_KEY, Scenario};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Reads the scenario from the current span's baggage and records it on the current (server) span.
pub fn current() -> Scenario {
    let scenario = Scenario::from_baggage(telemetry::baggage::get(BAGGAGE_KEY).as_deref());
    tracing::Span::current().set_attribute(ATTRIBUTE, scenario.name());
    scenario
}
