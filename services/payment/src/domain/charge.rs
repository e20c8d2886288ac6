//! Charging a card exactly once per idempotency key.
//!
//! The key is claimed in the database (UNIQUE constraint, `status = 'pending'`) before the provider is
//! called; only the request that holds the claim talks to the provider. A retry — sequential or
//! concurrent — finds the row and returns the first result once it is settled. A claim whose holder
//! vanished (request cancelled, process crashed) is taken over by a retry once its lease
//! (`CHARGE_PENDING_LEASE_MS`) has run out; the provider call carries the charge id as its
//! idempotency key, so a provider that deduplicates (as Stripe does) charges the card once even when
//! the first holder reached it before dying. The `charge` span carries the seed's events (`payment_started`,
//! `payment_completed` / `payment_failed`) and, for a decline, ERROR status and an exception event.

use std::time::{Duration, Instant};

use contracts::payments::{ChargeRequest, ChargeResponse, ChargeStatus};
use contracts::scenario::Scenario;
use opentelemetry::KeyValue;
use tracing::{Instrument, field::Empty};
use uuid::Uuid;

use crate::db::now_ms;
use crate::domain::card::CardToken;
use crate::error::PaymentError;
use crate::provider::ProviderCharge;
use crate::startup::AppState;
use crate::store::{
    ChargeRow, Claim, NewCharge, STATUS_DECLINED, STATUS_PENDING, STATUS_SUCCEEDED,
};

/// Largest single charge accepted (1,000,000.00 in the currency's major unit).
pub const MAX_AMOUNT_CENTS: i64 = 100_000_000;
const SETTLE_POLL: Duration = Duration::from_millis(20);

/// A validated charge request. The token lives here only until the provider call.
#[derive(Debug, Clone)]
pub struct ChargeCommand {
    pub idempotency_key: String,
    pub order_id: String,
    pub amount_cents: i64,
    pub currency: String,
    pub method: String,
    pub token: CardToken,
}

/// What a charge request resolved to.
#[derive(Debug, Clone)]
pub struct ChargeOutcome {
    pub response: ChargeResponse,
    /// True when this answer is the stored result of an earlier request with the same key.
    pub replayed: bool,
}

impl ChargeCommand {
    pub fn new(idempotency_key: Option<&str>, req: ChargeRequest) -> Result<Self, PaymentError> {
        let key = idempotency_key
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or(PaymentError::MissingIdempotencyKey)?;
        validate_id("order_id", &req.order_id)?;
        if !(1..=MAX_AMOUNT_CENTS).contains(&req.amount_cents) {
            return Err(PaymentError::Validation(format!(
                "amount_cents must be between 1 and {MAX_AMOUNT_CENTS}, got {}",
                req.amount_cents
            )));
        }
        let currency = req.currency.trim().to_ascii_uppercase();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(PaymentError::Validation(
                "currency must be a three-letter ISO 4217 code such as USD".into(),
            ));
        }
        if req.method != "card" {
            return Err(PaymentError::Validation(format!(
                "unsupported payment method `{}` (supported: card)",
                req.method.chars().take(32).collect::<String>()
            )));
        }
        let token = CardToken::parse(&req.token).map_err(PaymentError::Validation)?;
        Ok(Self {
            idempotency_key: key.to_owned(),
            order_id: req.order_id,
            amount_cents: req.amount_cents,
            currency,
            method: req.method,
            token,
        })
    }

    /// Identifies the request behind a key, so a reused key with a different charge is refused
    /// instead of silently replaying someone else's result. The token is not part of it on purpose:
    /// nothing derived from a token is stored beyond the last four digits.
    fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.order_id, self.amount_cents, self.currency, self.method
        )
    }
}

pub(crate) fn validate_id(field: &str, value: &str) -> Result<(), PaymentError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(PaymentError::Validation(format!(
            "{field} must be 1-64 characters of letters, digits, '_' or '-'"
        )))
    }
}

/// Charges the card once per idempotency key; retries get the first result.
pub async fn charge(
    state: &AppState,
    cmd: ChargeCommand,
    scenario: Scenario,
) -> Result<ChargeOutcome, PaymentError> {
    let charge_id = format!("ch_{}", Uuid::now_v7().simple());
    // Who holds the claim: a takeover hands the row to a new claim id, after which only the new
    // holder can settle it.
    let claim_id = Uuid::new_v4().simple().to_string();
    let card_last4 = cmd.token.last4();
    let fingerprint = cmd.fingerprint();
    let claim = state
        .store
        .claim_charge(&NewCharge {
            id: &charge_id,
            claim_id: &claim_id,
            idempotency_key: &cmd.idempotency_key,
            request_fingerprint: &fingerprint,
            order_id: &cmd.order_id,
            amount_cents: cmd.amount_cents,
            currency: &cmd.currency,
            method: &cmd.method,
            card_last4: &card_last4,
        })
        .await?;
    match claim {
        Claim::Existing(row) => {
            if row.request_fingerprint != fingerprint {
                return Err(PaymentError::IdempotencyKeyReused(cmd.idempotency_key));
            }
            let row = if row.status == STATUS_PENDING {
                match settle_or_take_over(state, &cmd.idempotency_key, &claim_id).await? {
                    Pending::Settled(row) => row,
                    Pending::TakenOver(row) => {
                        tracing::warn!(
                            payment.charge_id = %row.id,
                            claimed_at_ms = row.claimed_at_ms,
                            "taking over a pending charge whose lease ran out (its request was \
                             cancelled or crashed); retrying the provider call under the same \
                             charge id"
                        );
                        return run_charge(state, &row.id, &claim_id, &card_last4, cmd, scenario)
                            .await;
                    }
                }
            } else {
                row
            };
            tracing::info!(
                payment.charge_id = %row.id,
                "idempotent replay: returning the first result for this Idempotency-Key"
            );
            outcome_from_row(row).map(|response| ChargeOutcome {
                response,
                replayed: true,
            })
        }
        Claim::New => run_charge(state, &charge_id, &claim_id, &card_last4, cmd, scenario).await,
    }
}

/// The `charge` span: fraud check, provider call, result stored, metric recorded.
async fn run_charge(
    state: &AppState,
    charge_id: &str,
    claim_id: &str,
    card_last4: &str,
    cmd: ChargeCommand,
    scenario: Scenario,
) -> Result<ChargeOutcome, PaymentError> {
    let span = tracing::info_span!(
        "charge",
        payment.method = %cmd.method,
        payment.processor = crate::provider::PROCESSOR,
        payment.risk.score = Empty,
        payment.amount_cents = cmd.amount_cents,
        payment.currency = %cmd.currency,
        payment.card.last4 = %card_last4,
        payment.charge_id = %charge_id,
        payment.status = Empty,
        order.id = %cmd.order_id,
        tracelab.scenario = scenario.name(),
        otel.status_code = Empty,
        otel.status_description = Empty,
    );
    let started = Instant::now();
    let result = async {
        tracing::info!(
            order.id = %cmd.order_id,
            payment.amount_cents = cmd.amount_cents,
            "payment_started"
        );
        tracing::info!(
            "charging {} to card ending {card_last4}",
            format_money(cmd.amount_cents, &cmd.currency)
        );
        let risk = fraud_check(cmd.amount_cents, &cmd.currency, card_last4);
        tracing::Span::current().record("payment.risk.score", risk);
        let answer = state
            .provider
            .create_charge(
                &cmd.idempotency_key,
                &cmd.token,
                cmd.amount_cents,
                &cmd.currency,
                &cmd.order_id,
                scenario,
            )
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(failure) => {
                // No answer from the provider: give the claim up so a retry with the same key can
                // ask again (the provider, keyed the same, then replays whatever it did).
                state.store.release_charge(charge_id, claim_id).await?;
                let current = tracing::Span::current();
                current.record("payment.status", "provider_failed");
                current.record("otel.status_code", "ERROR");
                current.record("otel.status_description", failure.to_string());
                tracing::error!(
                    exception.type = "ProviderFailure",
                    exception.message = %failure,
                    "exception"
                );
                return Err(PaymentError::Provider(failure));
            }
        };
        let current = tracing::Span::current();
        match answer {
            ProviderCharge::Approved { provider_charge_id } => {
                state
                    .store
                    .complete_charge(
                        charge_id,
                        claim_id,
                        STATUS_SUCCEEDED,
                        Some(&provider_charge_id),
                        None,
                    )
                    .await?;
                current.record("payment.status", STATUS_SUCCEEDED);
                tracing::info!(payment.charge_id = %charge_id, "payment_completed");
                Ok(ChargeResponse {
                    charge_id: charge_id.to_owned(),
                    status: ChargeStatus::Succeeded,
                    amount_cents: cmd.amount_cents,
                    card_last4: card_last4.to_owned(),
                })
            }
            ProviderCharge::Declined { reason } => {
                state
                    .store
                    .complete_charge(charge_id, claim_id, STATUS_DECLINED, None, Some(&reason))
                    .await?;
                current.record("payment.status", STATUS_DECLINED);
                current.record("otel.status_code", "ERROR");
                current.record(
                    "otel.status_description",
                    format!("card_declined: {reason}"),
                );
                tracing::warn!(payment.charge_id = %charge_id, reason = %reason, "payment_failed");
                tracing::error!(
                    exception.type = "CardDeclined",
                    exception.message = %format!("card ending {card_last4} was declined: {reason}"),
                    "exception"
                );
                Err(PaymentError::CardDeclined {
                    charge_id: charge_id.to_owned(),
                    card_last4: card_last4.to_owned(),
                    reason,
                })
            }
        }
    }
    .instrument(span)
    .await;
    let status = match &result {
        Ok(_) => STATUS_SUCCEEDED,
        Err(PaymentError::CardDeclined { .. }) => STATUS_DECLINED,
        Err(_) => "error",
    };
    state.metrics.processing_duration.record(
        started.elapsed().as_secs_f64(),
        &[
            KeyValue::new("payment.status", status),
            KeyValue::new("payment.method", cmd.method.clone()),
        ],
    );
    result.map(|response| ChargeOutcome {
        response,
        replayed: false,
    })
}

/// Payment's own work inside `charge`: a rule-based risk score (0-100) from the amount, currency and
/// card. Real work, microseconds of it: the checkout's time is spent elsewhere, as a trace shows.
fn fraud_check(amount_cents: i64, currency: &str, card_last4: &str) -> i64 {
    let _span = tracing::info_span!("fraud_check").entered();
    let mut score = 5;
    if amount_cents > 100_000 {
        score += 30;
    } else if amount_cents > 20_000 {
        score += 10;
    }
    if currency != "USD" && currency != "EUR" {
        score += 15;
    }
    if card_last4 == "0002" {
        score += 40;
    }
    score.min(100)
}

/// What became of a pending claim a retry found.
enum Pending {
    /// Its holder settled it: here is the result to replay.
    Settled(ChargeRow),
    /// Its lease ran out and this request now holds it (under its own claim id).
    TakenOver(ChargeRow),
}

/// Polls (bounded by `IDEMPOTENCY_WAIT_MS`) until the charge that owns `key` is settled by its holder,
/// or its holder's lease (`CHARGE_PENDING_LEASE_MS`) runs out and this request takes it over. A holder
/// that is still inside its lease is never disturbed: past the wait the answer is 409.
async fn settle_or_take_over(
    state: &AppState,
    key: &str,
    claim_id: &str,
) -> Result<Pending, PaymentError> {
    let deadline = Instant::now() + state.idempotency_wait;
    let lease_ms = i64::try_from(state.charge_pending_lease.as_millis()).unwrap_or(i64::MAX);
    loop {
        let Some(row) = state.store.charge_by_key(key).await? else {
            // The first request released its claim: its provider call failed.
            return Err(PaymentError::EarlierAttemptFailed);
        };
        if row.status != STATUS_PENDING {
            return Ok(Pending::Settled(row));
        }
        let cutoff = now_ms().saturating_sub(lease_ms);
        if row.claimed_at_ms < cutoff
            && state
                .store
                .take_over_charge(key, &row.claim_id, claim_id, cutoff)
                .await?
        {
            return Ok(Pending::TakenOver(row));
        }
        if Instant::now() >= deadline {
            return Err(PaymentError::IdempotencyInProgress);
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
}

/// Rebuilds the first answer from the stored row.
fn outcome_from_row(row: ChargeRow) -> Result<ChargeResponse, PaymentError> {
    if row.status == STATUS_DECLINED {
        return Err(PaymentError::CardDeclined {
            charge_id: row.id,
            card_last4: row.card_last4,
            reason: row
                .decline_reason
                .unwrap_or_else(|| contracts::provider::DECLINE_MESSAGE.to_owned()),
        });
    }
    Ok(ChargeResponse {
        charge_id: row.id,
        status: ChargeStatus::Succeeded,
        amount_cents: row.amount_cents,
        card_last4: row.card_last4,
    })
}

/// `$149.99` for USD, `149.99 EUR` otherwise: how the seed's log line shows an amount.
pub fn format_money(amount_cents: i64, currency: &str) -> String {
    let major = amount_cents / 100;
    let minor = amount_cents % 100;
    if currency == "USD" {
        format!("${major}.{minor:02}")
    } else {
        format!("{major}.{minor:02} {currency}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> ChargeRequest {
        ChargeRequest {
            order_id: "ord_1".into(),
            amount_cents: 14_999,
            currency: "usd".into(),
            method: "card".into(),
            token: "tok_test_123".into(),
        }
    }

    #[test]
    fn validates_and_normalises() {
        let cmd = ChargeCommand::new(Some("key-1"), req()).unwrap();
        assert_eq!(cmd.currency, "USD");
        assert_eq!(cmd.fingerprint(), "ord_1|14999|USD|card");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(
            ChargeCommand::new(None, req()),
            Err(PaymentError::MissingIdempotencyKey)
        ));
        let mut r = req();
        r.amount_cents = 0;
        assert!(matches!(
            ChargeCommand::new(Some("k"), r),
            Err(PaymentError::Validation(_))
        ));
        let mut r = req();
        r.currency = "dollars".into();
        assert!(matches!(
            ChargeCommand::new(Some("k"), r),
            Err(PaymentError::Validation(_))
        ));
        let mut r = req();
        r.token = "4242424242424242".into();
        assert!(matches!(
            ChargeCommand::new(Some("k"), r),
            Err(PaymentError::Validation(_))
        ));
        let mut r = req();
        r.order_id = "../etc".into();
        assert!(matches!(
            ChargeCommand::new(Some("k"), r),
            Err(PaymentError::Validation(_))
        ));
    }

    #[test]
    fn money_reads_like_the_seed() {
        assert_eq!(format_money(14_999, "USD"), "$149.99");
        assert_eq!(format_money(5, "EUR"), "0.05 EUR");
    }
}
