//! The scenario catalogue: every fault a workshop can switch on, as code. The gateway decides the
//! scenario of each request (runtime flags or the `X-Tracelab-Scenario` header) and attaches it as W3C
//! baggage `tracelab.scenario=NAME`; every service reads it back with
//! `telemetry::baggage::get(BAGGAGE_KEY)` and records it on its spans as attribute `tracelab.scenario`.
//! [`REGISTRY`] documents each one (bug → symptom → fix, HotROD style); later tooling generates docs from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// W3C baggage key (and span attribute key) carrying the scenario decision.
pub const BAGGAGE_KEY: &str = "tracelab.scenario";
/// Request header forcing a scenario for one request at the gateway.
pub const HEADER: &str = "x-tracelab-scenario";
/// Span attribute key; the same as the baggage key so a trace query can match either.
pub const ATTRIBUTE: &str = BAGGAGE_KEY;

/// Every scenario of the brief's catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    Checkout,
    PaymentSlow,
    ProviderSlow,
    PaymentDeclined,
    InventorySlowQuery,
    InventoryOutOfStock,
    PropagationBroken,
    KafkaConsumerLag,
}

impl Scenario {
    /// Every variant, in catalogue order.
    pub const ALL: [Scenario; 8] = [
        Scenario::Checkout,
        Scenario::PaymentSlow,
        Scenario::ProviderSlow,
        Scenario::PaymentDeclined,
        Scenario::InventorySlowQuery,
        Scenario::InventoryOutOfStock,
        Scenario::PropagationBroken,
        Scenario::KafkaConsumerLag,
    ];

    /// The wire name (`payment.slow`, ...), used in the header, the baggage and the flags API.
    pub const fn name(self) -> &'static str {
        match self {
            Scenario::Checkout => "checkout",
            Scenario::PaymentSlow => "payment.slow",
            Scenario::ProviderSlow => "provider.slow",
            Scenario::PaymentDeclined => "payment.declined",
            Scenario::InventorySlowQuery => "inventory.slow_query",
            Scenario::InventoryOutOfStock => "inventory.out_of_stock",
            Scenario::PropagationBroken => "propagation.broken",
            Scenario::KafkaConsumerLag => "kafka.consumer_lag",
        }
    }

    /// This scenario's registry entry.
    pub fn info(self) -> &'static ScenarioInfo {
        REGISTRY
            .iter()
            .find(|i| i.scenario == self)
            .expect("REGISTRY covers every Scenario (unit-tested)")
    }

    /// Reads the scenario from a baggage value; `None` (absent or unknown) means plain `checkout`.
    pub fn from_baggage(value: Option<&str>) -> Scenario {
        value
            .and_then(|v| v.parse().ok())
            .unwrap_or(Scenario::Checkout)
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown scenario name (the gateway answers 400 with code `unknown_scenario`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scenario `{0}` (known: checkout, payment.slow, provider.slow, payment.declined, inventory.slow_query, inventory.out_of_stock, propagation.broken, kafka.consumer_lag)"
)]
pub struct UnknownScenario(pub String);

impl std::str::FromStr for Scenario {
    type Err = UnknownScenario;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownScenario(s.to_owned()))
    }
}

impl Serialize for Scenario {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Scenario {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One registry entry: what the scenario does, what you see in the trace, how it is fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ScenarioInfo {
    pub scenario: Scenario,
    pub name: &'static str,
    /// What happens (the bug, or the happy path).
    pub description: &'static str,
    /// What the trace/metrics show.
    pub symptom: &'static str,
    /// The documented fix (how a real team would resolve it).
    pub fix: &'static str,
    /// The cause in one line: the real mechanism that produces the symptom.
    pub mechanism: &'static str,
    /// The fix a workshop applies while the stack runs, in one line (what the e2e test applies).
    pub run_time_fix: &'static str,
    /// The seed document(s) the scenario comes from (`000`, `001`, ...; `—` when none).
    pub seed: &'static str,
    /// The span that shows the scenario best (what a trace assertion or a workshop points at).
    pub key_span: &'static str,
    /// The services whose behaviour changes under this scenario.
    pub acted_on_by: &'static [&'static str],
}

/// The catalogue, in [`Scenario::ALL`] order.
pub static REGISTRY: &[ScenarioInfo] = &[
    ScenarioInfo {
        scenario: Scenario::Checkout,
        name: "checkout",
        description: "The happy path: gateway authenticates and forwards, order-service validates, prices and \
                      stores the order, charges payment, reserves inventory, then confirms the order together \
                      with its order.placed outbox event; the outbox relay publishes it to Kafka and \
                      inventory's consumer commits the reservation and sends the confirmation email.",
        symptom: "One trace of ~35 spans across api-gateway, order-service, payment-service and \
                  inventory-service, including a Kafka PRODUCER/CONSUMER pair; no ERROR status; \
                  charge_payment ends before reserve_inventory starts; the request takes tens of ms.",
        fix: "Nothing to fix: this is the baseline every other scenario is compared with.",
        seed: "000, 001, 003",
        key_span: "api-gateway POST /orders",
        mechanism: "the happy path: every call real, nothing slowed",
        run_time_fix: "—",
        acted_on_by: &[],
    },
    ScenarioInfo {
        scenario: Scenario::PaymentSlow,
        name: "payment.slow",
        description: "The card provider's rate limiter refuses payment-service's first two attempts with 429 \
                      (card-provider's X-Simulate: rate_limited), and payment-service's retry policy waits a \
                      fixed 600 ms (PAYMENT_PROVIDER_RETRY_BACKOFF_MS) before each retry.",
        symptom: "`charge` takes ~1200 ms of a ~1300 ms request: payment is the bottleneck, yet its three \
                  stripe.create_charge CLIENT spans (429, 429, 200) are a few ms each: the time is the gaps \
                  between them, payment's own waiting; payment_processing_duration_seconds shifts right.",
        fix: "A sane retry policy: a short backoff (with jitter in production). At run time: \
              PUT /admin/provider {\"timeout_ms\":10000,\"max_attempts\":3,\"retry_backoff_ms\":25} at \
              payment-service; the same three attempts then fit in tens of ms.",
        seed: "000",
        key_span: "payment-service charge",
        mechanism: "card-provider answers 429 twice; payment retries after a fixed 600 ms backoff",
        run_time_fix: "payment-service `PUT /admin/provider` `retry_backoff_ms: 25`",
        acted_on_by: &["payment-service"],
    },
    ScenarioInfo {
        scenario: Scenario::ProviderSlow,
        name: "provider.slow",
        description: "The card provider is degraded (card-provider's X-Simulate: slow) and answers a charge \
                      after ~3650 ms; payment-service's per-attempt timeout (10 s) lets it.",
        symptom: "`stripe.create_charge` ~3650 ms fills payment's POST /charges, and the request: the time is \
                  spent outside our code, in a CLIENT span to the provider.",
        fix: "Bound the wait: PUT /admin/provider {\"timeout_ms\":1000,\"max_attempts\":3,\"retry_backoff_ms\":600} \
              at payment-service; the checkout then fails fast with 504 provider_timeout after 1 s and a retry \
              with the same Idempotency-Key is safe. In production add a circuit breaker, and open a ticket \
              with the provider.",
        seed: "002",
        key_span: "payment-service stripe.create_charge",
        mechanism: "card-provider is degraded and answers after 3650 ms; the client waits up to 10 s",
        run_time_fix: "payment-service `PUT /admin/provider` `timeout_ms: 1000` (fail fast, 504)",
        acted_on_by: &["payment-service"],
    },
    ScenarioInfo {
        scenario: Scenario::PaymentDeclined,
        name: "payment.declined",
        description: "The card provider declines the card: its real 402 answer (card-provider's X-Simulate: \
                      decline, as for the decline test tokens tok_chargeDeclined / tok_declined).",
        symptom: "ERROR status and an exception event on payment's charge spans, order ends payment_failed, \
                  nothing is reserved, the gateway answers 402 card_declined.",
        fix: "Nothing to fix in the system: tell the customer to use another card. A spike of declines across \
              customers points at the provider (check its status) or at fraud.",
        seed: "001, 003",
        key_span: "payment-service charge",
        mechanism: "card-provider declines the card (402)",
        run_time_fix: "— (another card)",
        acted_on_by: &["payment-service"],
    },
    ScenarioInfo {
        scenario: Scenario::InventorySlowQuery,
        name: "inventory.slow_query",
        description: "Before reserving, inventory audits each SKU's history with a real aggregation over the \
                      large stock_movements table (200k seeded rows) that has no index on sku: a full scan.",
        symptom: "The `SELECT stock_movements` db span dominates inventory's POST /reservations in the trace \
                  (tens of ms instead of ~1).",
        fix: "Add the missing index: `PUT /admin/slow-query {\"indexed\":true}` at inventory-service (or \
              INVENTORY_FIX_SLOW_QUERY=true); the same query then uses it and is fast.",
        seed: "003",
        key_span: "inventory-service SELECT stock_movements",
        mechanism: "an audit query scans 200k stock_movements rows: no index on sku",
        run_time_fix: "inventory-service `PUT /admin/slow-query` `indexed: true`",
        acted_on_by: &["inventory-service"],
    },
    ScenarioInfo {
        scenario: Scenario::InventoryOutOfStock,
        name: "inventory.out_of_stock",
        description: "The order holds an item inventory has none of: SOLDOUT-1 (stock 0 in the catalogue), or any \
                      SKU whose shelf was emptied at run time (PUT /admin/stock {\"sku\":\"LAPTOP-1\",\"available\":0} \
                      at inventory-service). order-service charges first, so inventory's stock check (an \
                      UPDATE that matches no row) refuses with 409 after the payment succeeded. The scenario \
                      header and flag only label such a request; the stock table decides.",
        symptom: "Error trace: reserve_inventory fails with 409, order-service compensates with POST /refunds at \
                  payment-service (a real stripe.create_refund call to the provider), the order ends cancelled \
                  and the gateway answers 409.",
        fix: "Check stock before charging: PUT /admin/checkout {\"check_stock_first\":true} at order-service \
              (ORDER_CHECK_STOCK_FIRST); the sold-out order is then refused before any charge. In production, \
              authorise first and capture after the reservation, so compensation is the exception.",
        seed: "—",
        key_span: "order-service reserve_inventory",
        mechanism: "the stock table has none (SOLDOUT-1, or a shelf emptied with `PUT /admin/stock`), found after the charge",
        run_time_fix: "order-service `PUT /admin/checkout` `check_stock_first: true`",
        acted_on_by: &["inventory-service", "order-service"],
    },
    ScenarioInfo {
        scenario: Scenario::PropagationBroken,
        name: "propagation.broken",
        description: "order-service calls payment-service with a client that does not inject traceparent/baggage \
                      (an uninstrumented HTTP client, the most common propagation bug).",
        symptom: "The trace breaks into fragments: payment-service's POST /charges starts a new root in a \
                  different trace, and order-service's charge_payment span has no child at all (the plain \
                  client makes no CLIENT span either); payment also loses the baggage, so it runs the plain \
                  path.",
        fix: "Use the instrumented client (telemetry::http::client()) for every outgoing call, and verify \
              propagation end to end with a trace assertion (every service present in ONE trace).",
        seed: "002 (pitfalls: not propagating context)",
        key_span: "payment-service POST /charges (as a separate root)",
        mechanism: "order-service calls payment with a plain client: no traceparent",
        run_time_fix: "in code: every call through `telemetry::http::client()`",
        acted_on_by: &["order-service"],
    },
    ScenarioInfo {
        scenario: Scenario::KafkaConsumerLag,
        name: "kafka.consumer_lag",
        description: "inventory's orders consumer sends each confirmation e-mail synchronously through the mail \
                      API, one message at a time (INVENTORY_CONSUMER_CONCURRENCY=1), and the mail API is slow \
                      (card-provider's X-Simulate: slow, ~1.5 s).",
        symptom: "Each `process orders` CONSUMER span holds a ~1.5 s mail CLIENT span, and with messages \
                  queued the consumer spans start ever later after their producer spans: consumer lag and \
                  message age grow.",
        fix: "Process messages concurrently (offsets still committed in order): PUT /admin/consumer \
              {\"concurrency\":8} at inventory-service; the queued messages' e-mails then overlap. In \
              production also scale the consumer group; alert on lag.",
        seed: "—",
        key_span: "inventory-service process orders",
        mechanism: "one message at a time, each waiting for a slow mail API call",
        run_time_fix: "inventory-service `PUT /admin/consumer` `concurrency: 8`",
        acted_on_by: &["inventory-service"],
    },
];

/// The registry as a Markdown document (what `cargo run -p contracts --example scenarios` prints; the
/// docs' scenario page is generated from it).
pub fn registry_markdown() -> String {
    let mut out = String::from(
        "| scenario | mechanism | fix at run time | seed | key span |\n|---|---|---|---|---|\n",
    );
    for info in REGISTRY {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | `{}` |\n",
            info.name, info.mechanism, info.run_time_fix, info.seed, info.key_span
        ));
    }
    for info in REGISTRY {
        out.push_str(&format!(
            "\n## `{}`\n\n- **What happens:** {}\n- **Symptom:** {}\n- **Fix:** {}\n- **Seed:** {}\n- **Acted on by:** {}\n- **Force it:** `X-Tracelab-Scenario: {}`\n",
            info.name,
            squash(info.description),
            squash(info.symptom),
            squash(info.fix),
            info.seed,
            if info.acted_on_by.is_empty() {
                "—".to_owned()
            } else {
                info.acted_on_by.join(", ")
            },
            info.name
        ));
    }
    out
}

/// The registry's texts are wrapped in the source with `\` continuations; collapse the runs of spaces.
fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One runtime flag of the gateway's `GET/PUT /admin/flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FlagState {
    pub enabled: bool,
    /// Share of requests that get the scenario while enabled, in percent (0–100).
    pub probability: u32,
}

/// `GET /admin/flags` answer (and `PUT`'s): every fault's flag by scenario name.
pub type Flags = BTreeMap<String, FlagState>;

/// One entry of a `PUT /admin/flags` body. `enabled` switches the flag; `probability`, when given,
/// sets its share, and when omitted stays what it was, so `{"payment.slow":{"enabled":false}}`
/// switches a flag off and a later `{"enabled":true}` brings it back at the same share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagChange {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<u32>,
}

/// `PUT /admin/flags` body: a PUT may name only some scenarios.
pub type FlagChanges = BTreeMap<String, FlagChange>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_covers_every_variant_in_order() {
        assert_eq!(REGISTRY.len(), Scenario::ALL.len());
        for (info, sc) in REGISTRY.iter().zip(Scenario::ALL) {
            assert_eq!(info.scenario, sc);
            assert_eq!(info.name, sc.name());
            assert!(
                !info.description.is_empty() && !info.symptom.is_empty() && !info.fix.is_empty()
            );
            assert!(!info.seed.is_empty() && !info.key_span.is_empty());
            assert!(!info.mechanism.is_empty() && !info.run_time_fix.is_empty());
            assert_eq!(sc.info().name, sc.name());
        }
    }

    #[test]
    fn names_round_trip() {
        for sc in Scenario::ALL {
            assert_eq!(sc.name().parse::<Scenario>().unwrap(), sc);
            let json = serde_json::to_string(&sc).unwrap();
            assert_eq!(serde_json::from_str::<Scenario>(&json).unwrap(), sc);
        }
        assert!("payment.fast".parse::<Scenario>().is_err());
        assert_eq!(Scenario::from_baggage(None), Scenario::Checkout);
        assert_eq!(Scenario::from_baggage(Some("nope")), Scenario::Checkout);
        assert_eq!(
            Scenario::from_baggage(Some("payment.slow")),
            Scenario::PaymentSlow
        );
    }

    #[test]
    fn markdown_lists_every_scenario() {
        let md = registry_markdown();
        for sc in Scenario::ALL {
            assert!(md.contains(&format!("## `{}`", sc.name())), "{}", sc.name());
        }
        assert!(
            !md.contains("  "),
            "no wrapped-source spacing leaks into the docs"
        );
    }

    #[test]
    fn a_flag_change_may_leave_the_probability_out() {
        let off: FlagChanges =
            serde_json::from_str(r#"{"payment.slow":{"enabled":false}}"#).unwrap();
        assert_eq!(
            off["payment.slow"],
            FlagChange {
                enabled: false,
                probability: None
            }
        );
        let on: FlagChanges =
            serde_json::from_str(r#"{"payment.slow":{"enabled":true,"probability":25}}"#).unwrap();
        assert_eq!(on["payment.slow"].probability, Some(25));
        assert!(
            serde_json::from_str::<FlagChanges>(
                r#"{"payment.slow":{"enabled":true,"probabilty":5}}"#
            )
            .is_err(),
            "a misspelt field is refused, not ignored"
        );
        assert!(
            serde_json::from_str::<FlagChanges>(r#"{"payment.slow":{"probability":5}}"#).is_err()
        );
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = Scenario::ALL.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Scenario::ALL.len());
    }
}
