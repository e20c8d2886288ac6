//! Refunding a charge, at most once: the refunds table allows one row per charge (UNIQUE charge_id),
//! claimed before the provider is called, so a retried or concurrent refund returns the first one.
//! order-service sends refunds to compensate an order whose reservation failed.

use std::time::{Duration, Instant};

use contracts::payments::{RefundRequest, RefundResponse};
use contracts::scenario::Scenario;
use tracing::{Instrument, field::Empty};
use uuid::Uuid;

use crate::domain::charge::validate_id;
use crate::error::PaymentError;
use crate::startup::AppState;
use crate::store::{Claim, RefundRow, STATUS_PENDING, STATUS_SUCCEEDED};

const SETTLE_POLL: Duration = Duration::from_millis(20);

/// What a refund request resolved to.
#[derive(Debug, Clone)]
pub struct RefundOutcome {
    pub response: RefundResponse,
    pub replayed: bool,
}

pub async fn refund(
    state: &AppState,
    req: RefundRequest,
    scenario: Scenario,
) -> Result<RefundOutcome, PaymentError> {
    validate_id("charge_id", &req.charge_id)?;
    validate_id("order_id", &req.order_id)?;
    if req.amount_cents <= 0 {
        return Err(PaymentError::Validation(format!(
            "amount_cents must be positive, got {}",
            req.amount_cents
        )));
    }
    let span = tracing::info_span!(
        "refund",
        payment.charge_id = %req.charge_id,
        payment.refund_id = Empty,
        payment.amount_cents = req.amount_cents,
        order.id = %req.order_id,
        tracelab.scenario = scenario.name(),
        otel.status_code = Empty,
        otel.status_description = Empty,
    );
    async {
        let charge = state
            .store
            .charge_by_id(&req.charge_id)
            .await?
            .ok_or_else(|| PaymentError::ChargeNotFound(req.charge_id.clone()))?;
        if charge.order_id != req.order_id {
            return Err(PaymentError::Validation(format!(
                "charge `{}` does not belong to order `{}`",
                req.charge_id, req.order_id
            )));
        }
        let provider_charge_id = match (charge.status.as_str(), &charge.provider_charge_id) {
            (STATUS_SUCCEEDED, Some(id)) => id.clone(),
            (status, _) => {
                return Err(PaymentError::NotRefundable {
                    charge_id: charge.id,
                    reason: format!("its status is `{status}`"),
                });
            }
        };
        if req.amount_cents > charge.amount_cents {
            return Err(PaymentError::Validation(format!(
                "refund of {} exceeds the charged {}",
                req.amount_cents, charge.amount_cents
            )));
        }
        let refund_id = format!("re_{}", Uuid::now_v7().simple());
        let claim = state
            .store
            .claim_refund(&refund_id, &charge.id, &req.order_id, req.amount_cents)
            .await?;
        let (row, replayed) = match claim {
            Claim::Existing(row) if row.status == STATUS_PENDING => {
                (wait_until_settled(state, &charge.id).await?, true)
            }
            Claim::Existing(row) => (row, true),
            Claim::New => {
                let key = format!("refund:{}", charge.id);
                let provider_refund_id = match state
                    .provider
                    .create_refund(&key, &provider_charge_id, req.amount_cents, scenario)
                    .await
                {
                    Ok(id) => id,
                    Err(failure) => {
                        state.store.release_refund(&refund_id).await?;
                        let current = tracing::Span::current();
                        current.record("otel.status_code", "ERROR");
                        current.record("otel.status_description", failure.to_string());
                        return Err(PaymentError::Provider(failure));
                    }
                };
                state
                    .store
                    .complete_refund(&refund_id, &provider_refund_id)
                    .await?;
                tracing::info!(
                    payment.refund_id = %refund_id,
                    payment.charge_id = %charge.id,
                    "refund_completed"
                );
                let row = RefundRow {
                    id: refund_id.clone(),
                    charge_id: charge.id.clone(),
                    order_id: req.order_id.clone(),
                    amount_cents: req.amount_cents,
                    status: STATUS_SUCCEEDED.to_owned(),
                };
                (row, false)
            }
        };
        tracing::Span::current().record("payment.refund_id", row.id.as_str());
        Ok(RefundOutcome {
            response: RefundResponse {
                refund_id: row.id,
                charge_id: row.charge_id,
                status: row.status,
            },
            replayed,
        })
    }
    .instrument(span)
    .await
}

async fn wait_until_settled(state: &AppState, charge_id: &str) -> Result<RefundRow, PaymentError> {
    let deadline = Instant::now() + state.idempotency_wait;
    loop {
        let Some(row) = state.store.refund_by_charge(charge_id).await? else {
            return Err(PaymentError::EarlierAttemptFailed);
        };
        if row.status != STATUS_PENDING {
            return Ok(row);
        }
        if Instant::now() >= deadline {
            return Err(PaymentError::IdempotencyInProgress);
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
}
