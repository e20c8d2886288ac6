//! Handling `order.placed` events (independent of Kafka, so storage tests can drive it directly):
//! `commit_reservation` marks the order's reservation committed, exactly once per event id, then
//! `send_confirmation_email` sends the confirmation through the mail API — seed 001's span. The two
//! steps are recorded apart (`processed_events`, `confirmation_emails`): a redelivered event whose
//! e-mail step failed sends the e-mail and changes nothing else. The mail API call carries the key
//! `email:ORDER`, so a resend after a crash between its answer and its record is answered from the
//! mail API's idempotency store instead of mailing the customer twice.

use contracts::events::{Envelope, ORDER_PLACED, ORDER_PLACED_VERSION, OrderPlaced};
use contracts::scenario::Scenario;
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use service_kit::error::BadRequest;

use crate::error::InventoryError;
use crate::mail::Mailer;
use crate::store::{EventOutcome, Store};

#[derive(Debug, Clone)]
pub struct OrderEventHandler {
    store: Store,
    mailer: Mailer,
}

impl OrderEventHandler {
    pub fn new(store: Store, mailer: Mailer) -> Self {
        Self { store, mailer }
    }

    /// Decodes a message payload into an `order.placed` envelope of a version this code knows.
    pub fn decode(payload: Option<&[u8]>) -> Result<Envelope<OrderPlaced>, InventoryError> {
        let payload =
            payload.ok_or_else(|| InventoryError::Validation("message has no payload".into()))?;
        let envelope: Envelope<OrderPlaced> = serde_json::from_slice(payload)
            .map_err(|e| BadRequest::InvalidJson(contracts::redact::redact(&e.to_string())))?;
        if envelope.r#type != ORDER_PLACED || envelope.version != ORDER_PLACED_VERSION {
            return Err(InventoryError::Validation(format!(
                "unsupported event {} v{} (expected {ORDER_PLACED} v{ORDER_PLACED_VERSION})",
                envelope.r#type, envelope.version
            )));
        }
        Ok(envelope)
    }

    /// Handles one event inside the current (CONSUMER) span.
    pub async fn handle(
        &self,
        envelope: &Envelope<OrderPlaced>,
        scenario: Scenario,
    ) -> Result<EventOutcome, InventoryError> {
        let event_id = envelope.id.to_string();
        let order_id = envelope.data.order_id.as_str();
        let outcome = self
            .commit_reservation(&event_id, &envelope.r#type, order_id, scenario)
            .await?;
        match outcome {
            EventOutcome::Duplicate => {
                let current = tracing::Span::current();
                current.set_attribute("tracelab.duplicate", true);
                // The event was processed before, but its e-mail step may have failed after the
                // commit (provider error, crash): redo only that step, never the reservation.
                if self.store.email_sent(order_id).await? {
                    tracing::info!(messaging.message.id = %event_id, "duplicate event ignored");
                } else {
                    current.set_attribute("inventory.confirmation_email.retried", true);
                    tracing::warn!(
                        messaging.message.id = %event_id,
                        order.id = %order_id,
                        "redelivered event: reservation already committed, confirmation e-mail \
                         missing; sending it now"
                    );
                    self.send_confirmation_email(order_id, &event_id, scenario)
                        .await?;
                }
            }
            EventOutcome::Processed { .. } => {
                self.send_confirmation_email(order_id, &event_id, scenario)
                    .await?;
            }
        }
        Ok(outcome)
    }

    async fn commit_reservation(
        &self,
        event_id: &str,
        event_type: &str,
        order_id: &str,
        scenario: Scenario,
    ) -> Result<EventOutcome, InventoryError> {
        let span = tracing::info_span!(
            "commit_reservation",
            order.id = %order_id,
            messaging.message.id = %event_id,
            inventory.duplicate = Empty,
            inventory.reservation.committed = Empty,
            tracelab.scenario = scenario.name(),
        );
        async {
            let outcome = self
                .store
                .commit_reservation(event_id, event_type, order_id)
                .await?;
            let current = tracing::Span::current();
            match outcome {
                EventOutcome::Duplicate => {
                    current.record("inventory.duplicate", true);
                }
                EventOutcome::Processed {
                    reservation_committed,
                } => {
                    current.record("inventory.duplicate", false);
                    current.record("inventory.reservation.committed", reservation_committed);
                    if !reservation_committed {
                        tracing::warn!(
                            order.id = %order_id,
                            "no reserved reservation to commit for this order"
                        );
                    }
                }
            }
            Ok(outcome)
        }
        .instrument(span)
        .await
    }

    /// The confirmation e-mail, through the mail API (a CLIENT span below this one). Under
    /// `kafka.consumer_lag` the mail API is slow, and this is the step the consumer waits for.
    async fn send_confirmation_email(
        &self,
        order_id: &str,
        event_id: &str,
        scenario: Scenario,
    ) -> Result<(), InventoryError> {
        let span = tracing::info_span!(
            "send_confirmation_email",
            order.id = %order_id,
            email.template = "order_confirmation",
            email.id = Empty,
            tracelab.scenario = scenario.name(),
        );
        async {
            let email = self.mailer.send_confirmation(order_id, scenario).await?;
            tracing::Span::current().record("email.id", email.id.as_str());
            if self.store.record_email(order_id, event_id).await? {
                // No address, name or other PII: the order id is all a log line needs.
                tracing::info!(order.id = %order_id, "confirmation email sent");
            }
            Ok(())
        }
        .instrument(span)
        .await
    }
}
