//! The charges and refunds tables. Every statement runs inside a `telemetry::db::span` CLIENT span
//! (`INSERT charges`, `UPDATE charges`, ...) carrying its parameter-free query text.

use service_kit::db::{Database, TracedExt};
use sqlx::{AnyPool, Row, any::AnyRow};

use crate::db::now_ms;

/// A charge as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeRow {
    pub id: String,
    pub request_fingerprint: String,
    pub order_id: String,
    pub amount_cents: i64,
    pub currency: String,
    pub method: String,
    pub card_last4: String,
    pub status: String,
    pub provider_charge_id: Option<String>,
    pub decline_reason: Option<String>,
    /// When the current holder of a `pending` claim took it (epoch ms): the start of its lease.
    pub claimed_at_ms: i64,
    /// The holder of the claim (see [`Store::take_over_charge`]).
    pub claim_id: String,
}

/// A refund as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRow {
    pub id: String,
    pub charge_id: String,
    pub order_id: String,
    pub amount_cents: i64,
    pub status: String,
}

/// The outcome of trying to claim an idempotency slot (a charge key, or a charge's single refund).
#[derive(Debug)]
pub enum Claim<T> {
    /// This request owns the slot and must do the work.
    New,
    /// Someone got there first (a retry, or a concurrent duplicate): here is their row.
    Existing(T),
}

/// Why [`Store::complete_charge`] stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum CompleteError {
    #[error(
        "charge `{0}` is no longer pending under this request's claim (settled, or taken over by a retry after the lease ran out)"
    )]
    NotHeld(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub const STATUS_PENDING: &str = "pending";
pub const STATUS_SUCCEEDED: &str = "succeeded";
pub const STATUS_DECLINED: &str = "declined";

const CLAIM_CHARGE: &str = "INSERT INTO charges (id, idempotency_key, request_fingerprint, order_id, \
     amount_cents, currency, method, card_last4, status, created_at_ms, claimed_at_ms, claim_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9, $9, $10) \
     ON CONFLICT (idempotency_key) DO NOTHING";
// The compare-and-set that lets exactly one retry inherit an abandoned claim: it only matches a row
// that is still pending, still held by the holder the retry saw, and whose lease ran out; it hands
// the row to a new claim_id (so racing retries that saw the same holder cannot both win).
const TAKE_OVER_CHARGE: &str = "UPDATE charges SET claim_id = $1, claimed_at_ms = $2 \
     WHERE idempotency_key = $3 AND status = 'pending' AND claim_id = $4 AND claimed_at_ms < $5";
const SELECT_CHARGE_BY_KEY: &str = "SELECT id, request_fingerprint, order_id, amount_cents, currency, \
     method, card_last4, status, provider_charge_id, decline_reason, claimed_at_ms, claim_id FROM charges \
     WHERE idempotency_key = $1";
const SELECT_CHARGE_BY_ID: &str = "SELECT id, request_fingerprint, order_id, amount_cents, currency, \
     method, card_last4, status, provider_charge_id, decline_reason, claimed_at_ms, claim_id FROM charges \
     WHERE id = $1";
// Only the current holder settles a claim: a request whose claim was taken over changes nothing.
const COMPLETE_CHARGE: &str = "UPDATE charges SET status = $1, provider_charge_id = $2, \
     decline_reason = $3, completed_at_ms = $4 WHERE id = $5 AND status = 'pending' AND claim_id = $6";
// A claim given up after the provider gave no answer; only its current holder may give it up.
const RELEASE_CHARGE: &str =
    "DELETE FROM charges WHERE id = $1 AND status = 'pending' AND claim_id = $2";
const RELEASE_REFUND: &str = "DELETE FROM refunds WHERE id = $1 AND status = 'pending'";
const COUNT_CHARGES_FOR_ORDER: &str = "SELECT COUNT(*) AS n FROM charges WHERE order_id = $1";
const CLAIM_REFUND: &str = "INSERT INTO refunds (id, charge_id, order_id, amount_cents, status, \
     created_at_ms) VALUES ($1, $2, $3, $4, 'pending', $5) ON CONFLICT (charge_id) DO NOTHING";
const SELECT_REFUND_BY_CHARGE: &str = "SELECT id, charge_id, order_id, amount_cents, status FROM refunds \
     WHERE charge_id = $1";
const COMPLETE_REFUND: &str = "UPDATE refunds SET status = 'succeeded', provider_refund_id = $1, \
     completed_at_ms = $2 WHERE id = $3 AND status = 'pending'";

/// A new charge to claim.
#[derive(Debug, Clone)]
pub struct NewCharge<'a> {
    pub id: &'a str,
    /// Identifies this request as the holder of the claim (see [`Store::complete_charge`]).
    pub claim_id: &'a str,
    pub idempotency_key: &'a str,
    pub request_fingerprint: &'a str,
    pub order_id: &'a str,
    pub amount_cents: i64,
    pub currency: &'a str,
    pub method: &'a str,
    pub card_last4: &'a str,
}

/// The queries, over `service_kit::db::Database` (the pool and its `db.system.name`), which it
/// derefs to: `store.pool()`, and `self.span(..)` for each statement's CLIENT span.
#[derive(Debug, Clone)]
pub struct Store(Database);

impl std::ops::Deref for Store {
    type Target = Database;
    fn deref(&self) -> &Database {
        &self.0
    }
}

impl Store {
    /// Wraps the service's pool; `database_url` names the engine the spans report.
    pub fn from_pool(pool: AnyPool, database_url: &str) -> Self {
        Self(Database::new(pool, database_url))
    }

    /// Inserts a pending charge under its idempotency key, unless the key is taken.
    pub async fn claim_charge(&self, new: &NewCharge<'_>) -> Result<Claim<ChargeRow>, sqlx::Error> {
        let inserted = sqlx::query(CLAIM_CHARGE)
            .bind(new.id)
            .bind(new.idempotency_key)
            .bind(new.request_fingerprint)
            .bind(new.order_id)
            .bind(new.amount_cents)
            .bind(new.currency)
            .bind(new.method)
            .bind(new.card_last4)
            .bind(now_ms())
            .bind(new.claim_id)
            .execute(self.pool())
            .traced(self.span("INSERT", "charges", CLAIM_CHARGE))
            .await?
            .rows_affected();
        if inserted == 1 {
            return Ok(Claim::New);
        }
        match self.charge_by_key(new.idempotency_key).await? {
            Some(row) => Ok(Claim::Existing(row)),
            // The conflicting claim was released (its provider call failed) between the two
            // statements: reported as a database error rather than risking a second charge; the
            // caller's retry claims afresh.
            None => Err(sqlx::Error::RowNotFound),
        }
    }

    pub async fn charge_by_key(&self, key: &str) -> Result<Option<ChargeRow>, sqlx::Error> {
        sqlx::query(SELECT_CHARGE_BY_KEY)
            .bind(key)
            .fetch_optional(self.pool())
            .traced(self.span("SELECT", "charges", SELECT_CHARGE_BY_KEY))
            .await?
            .map(|r| charge_from_row(&r))
            .transpose()
    }

    pub async fn charge_by_id(&self, id: &str) -> Result<Option<ChargeRow>, sqlx::Error> {
        sqlx::query(SELECT_CHARGE_BY_ID)
            .bind(id)
            .fetch_optional(self.pool())
            .traced(self.span("SELECT", "charges", SELECT_CHARGE_BY_ID))
            .await?
            .map(|r| charge_from_row(&r))
            .transpose()
    }

    /// Takes over the pending claim on `key` from `holder` when it claimed before `cutoff_ms` (its
    /// lease ran out: the request was cancelled or its process died). True when this caller is now
    /// the holder under `claim_id`; false when the row is settled, its lease still runs, or another
    /// retry took it first.
    pub async fn take_over_charge(
        &self,
        key: &str,
        holder: &str,
        claim_id: &str,
        cutoff_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        let taken = sqlx::query(TAKE_OVER_CHARGE)
            .bind(claim_id)
            .bind(now_ms())
            .bind(key)
            .bind(holder)
            .bind(cutoff_ms)
            .execute(self.pool())
            .traced(self.span("UPDATE", "charges", TAKE_OVER_CHARGE))
            .await?
            .rows_affected();
        Ok(taken == 1)
    }

    /// Records the provider's answer on a pending charge held by `claim_id`. Fails with
    /// [`CompleteError::NotHeld`] when no row changed: the charge is no longer pending, or a retry
    /// took the claim over after this request's lease ran out.
    pub async fn complete_charge(
        &self,
        id: &str,
        claim_id: &str,
        status: &str,
        provider_charge_id: Option<&str>,
        decline_reason: Option<&str>,
    ) -> Result<(), CompleteError> {
        let changed = sqlx::query(COMPLETE_CHARGE)
            .bind(status)
            .bind(provider_charge_id)
            .bind(decline_reason)
            .bind(now_ms())
            .bind(id)
            .bind(claim_id)
            .execute(self.pool())
            .traced(self.span("UPDATE", "charges", COMPLETE_CHARGE))
            .await?
            .rows_affected();
        if changed == 1 {
            Ok(())
        } else {
            Err(CompleteError::NotHeld(id.to_owned()))
        }
    }

    /// Gives a pending claim up after the provider call failed without an answer, so a retry with
    /// the same key claims afresh (and re-asks the provider with the same key, which then replays
    /// whatever it did). Settled rows are never deleted.
    pub async fn release_charge(&self, id: &str, claim_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query(RELEASE_CHARGE)
            .bind(id)
            .bind(claim_id)
            .execute(self.pool())
            .traced(self.span("DELETE", "charges", RELEASE_CHARGE))
            .await?;
        Ok(())
    }

    /// Same as [`Self::release_charge`], for a refund claim.
    pub async fn release_refund(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query(RELEASE_REFUND)
            .bind(id)
            .execute(self.pool())
            .traced(self.span("DELETE", "refunds", RELEASE_REFUND))
            .await?;
        Ok(())
    }

    /// How many charges exist for an order (tests and diagnostics: "never charged twice").
    pub async fn count_charges_for_order(&self, order_id: &str) -> Result<i64, sqlx::Error> {
        sqlx::query(COUNT_CHARGES_FOR_ORDER)
            .bind(order_id)
            .fetch_one(self.pool())
            .traced(self.span("SELECT", "charges", COUNT_CHARGES_FOR_ORDER))
            .await?
            .try_get::<i64, _>("n")
    }

    /// Inserts the pending refund of a charge, unless the charge already has one.
    pub async fn claim_refund(
        &self,
        id: &str,
        charge_id: &str,
        order_id: &str,
        amount_cents: i64,
    ) -> Result<Claim<RefundRow>, sqlx::Error> {
        let inserted = sqlx::query(CLAIM_REFUND)
            .bind(id)
            .bind(charge_id)
            .bind(order_id)
            .bind(amount_cents)
            .bind(now_ms())
            .execute(self.pool())
            .traced(self.span("INSERT", "refunds", CLAIM_REFUND))
            .await?
            .rows_affected();
        if inserted == 1 {
            return Ok(Claim::New);
        }
        match self.refund_by_charge(charge_id).await? {
            Some(row) => Ok(Claim::Existing(row)),
            None => Err(sqlx::Error::RowNotFound),
        }
    }

    pub async fn refund_by_charge(
        &self,
        charge_id: &str,
    ) -> Result<Option<RefundRow>, sqlx::Error> {
        sqlx::query(SELECT_REFUND_BY_CHARGE)
            .bind(charge_id)
            .fetch_optional(self.pool())
            .traced(self.span("SELECT", "refunds", SELECT_REFUND_BY_CHARGE))
            .await?
            .map(|r| refund_from_row(&r))
            .transpose()
    }

    pub async fn complete_refund(
        &self,
        id: &str,
        provider_refund_id: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(COMPLETE_REFUND)
            .bind(provider_refund_id)
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .traced(self.span("UPDATE", "refunds", COMPLETE_REFUND))
            .await?;
        Ok(())
    }
}

fn charge_from_row(row: &AnyRow) -> Result<ChargeRow, sqlx::Error> {
    Ok(ChargeRow {
        id: row.try_get("id")?,
        request_fingerprint: row.try_get("request_fingerprint")?,
        order_id: row.try_get("order_id")?,
        amount_cents: row.try_get("amount_cents")?,
        currency: row.try_get("currency")?,
        method: row.try_get("method")?,
        card_last4: row.try_get("card_last4")?,
        status: row.try_get("status")?,
        provider_charge_id: row.try_get("provider_charge_id")?,
        decline_reason: row.try_get("decline_reason")?,
        claimed_at_ms: row.try_get("claimed_at_ms")?,
        claim_id: row.try_get("claim_id")?,
    })
}

fn refund_from_row(row: &AnyRow) -> Result<RefundRow, sqlx::Error> {
    Ok(RefundRow {
        id: row.try_get("id")?,
        charge_id: row.try_get("charge_id")?,
        order_id: row.try_get("order_id")?,
        amount_cents: row.try_get("amount_cents")?,
        status: row.try_get("status")?,
    })
}
