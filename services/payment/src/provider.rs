//! The simulated external card provider ("stripe"). It is not reached over the network: each call is a
//! CLIENT span with the provider's peer attributes (`server.address`, `server.port`, `peer.service`)
//! whose duration comes from the latency model in [`ProviderConfig`], so traces look exactly like a
//! real third-party call — including the slow provider of scenario `provider.slow`.

use contracts::scenario::Scenario;
use tracing::{Instrument, field::Empty};
use uuid::Uuid;

use crate::config::ProviderConfig;
use crate::domain::card::CardToken;

/// What the provider answered to a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderCharge {
    Approved { provider_charge_id: String },
    Declined { reason: String },
}

/// The peer name every provider span reports.
pub const PEER_SERVICE: &str = "stripe";
/// The decline message the provider returns (Stripe's wording).
pub const DECLINE_MESSAGE: &str = "Your card was declined.";

#[derive(Debug, Clone)]
pub struct SimulatedProvider {
    config: ProviderConfig,
}

impl SimulatedProvider {
    pub fn new(config: ProviderConfig) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    fn client_span(&self, name: &'static str, path: &str) -> tracing::Span {
        let host = &self.config.provider_host;
        tracing::info_span!(
            "provider call",
            otel.name = name,
            otel.kind = "client",
            peer.service = PEER_SERVICE,
            server.address = %host,
            server.port = i64::from(self.config.provider_port),
            http.request.method = "POST",
            url.full = %format!("https://{host}{path}"),
            http.response.status_code = Empty,
            payment.provider.id = Empty,
            error.type = Empty,
            otel.status_code = Empty,
            otel.status_description = Empty,
        )
    }

    /// `stripe.create_charge`: approves or declines after the modelled latency. The card is declined
    /// for the provider's decline test tokens and under scenario `payment.declined`.
    ///
    /// `idempotency_key` is what a real provider receives as its `Idempotency-Key` header (the same
    /// for every retry of one charge). This in-process simulation keeps no state, so it does not
    /// deduplicate on it.
    pub async fn create_charge(
        &self,
        token: &CardToken,
        amount_cents: i64,
        currency: &str,
        scenario: Scenario,
        idempotency_key: &str,
    ) -> ProviderCharge {
        let span = self.client_span("stripe.create_charge", "/v1/charges");
        let delay = self.config.provider_delay(scenario);
        let declined = token.is_declined() || scenario == Scenario::PaymentDeclined;
        async {
            tracing::debug!(
                amount_cents,
                currency,
                idempotency_key,
                "provider charge requested"
            );
            tokio::time::sleep(delay).await;
            let current = tracing::Span::current();
            if declined {
                current.record("http.response.status_code", 402_i64);
                current.record("error.type", "card_declined");
                current.record("otel.status_code", "ERROR");
                current.record(
                    "otel.status_description",
                    "card_declined: Your card was declined.",
                );
                tracing::error!(
                    exception.type = "CardDeclined",
                    exception.message = DECLINE_MESSAGE,
                    "exception"
                );
                ProviderCharge::Declined {
                    reason: DECLINE_MESSAGE.to_owned(),
                }
            } else {
                let provider_charge_id = format!("ch_{}", Uuid::new_v4().simple());
                current.record("http.response.status_code", 200_i64);
                current.record("payment.provider.id", provider_charge_id.as_str());
                ProviderCharge::Approved { provider_charge_id }
            }
        }
        .instrument(span)
        .await
    }

    /// `stripe.create_refund`: the simulated provider always accepts a refund of a captured charge.
    pub async fn create_refund(&self, provider_charge_id: &str, amount_cents: i64) -> String {
        let span = self.client_span("stripe.create_refund", "/v1/refunds");
        let delay = self.config.provider_delay(Scenario::Checkout);
        async {
            tracing::debug!(
                provider_charge_id,
                amount_cents,
                "provider refund requested"
            );
            tokio::time::sleep(delay).await;
            let refund_id = format!("re_{}", Uuid::new_v4().simple());
            let current = tracing::Span::current();
            current.record("http.response.status_code", 200_i64);
            current.record("payment.provider.id", refund_id.as_str());
            refund_id
        }
        .instrument(span)
        .await
    }
}
