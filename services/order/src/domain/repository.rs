//! All of order-service's SQL, each statement in a `telemetry::db::span` CLIENT span. The queries use
//! `$N` placeholders and integer timestamps so the same text runs on SQLite and PostgreSQL.

use std::collections::HashMap;

use contracts::orders::{LineItem, Order, OrderStatus};
// `.traced(span)`: runs a sqlx future inside a db span that is marked ERROR when the call fails.
use service_kit::db::TracedExt;
use sqlx::{AnyPool, AssertSqlSafe, Row};

/// A priced order, ready to be stored.
pub struct NewOrder<'a> {
    pub id: &'a str,
    pub items: &'a [LineItem],
    pub unit_prices: &'a [i64],
    pub total_cents: i64,
    pub currency: &'a str,
    pub payment_method: &'a str,
    pub scenario: &'a str,
    pub created_at_ms: i64,
}

/// One outbox row: an event waiting to be published (or already published, `sent_at_ms` set).
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: String,
    pub aggregate_id: String,
    pub topic: String,
    pub message_key: String,
    pub event_type: String,
    pub payload: String,
    /// JSON object of W3C carrier entries (traceparent, tracestate, baggage).
    pub trace_context: String,
    pub created_at_ms: i64,
    pub attempts: i64,
}

/// A client's `Idempotency-Key` row (see the `idempotency_keys` migration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub request_fingerprint: String,
    pub order_id: String,
    pub status: String,
    pub lock_id: String,
    pub locked_at_ms: i64,
    pub response_status: Option<i64>,
    pub response_body: Option<String>,
}

pub const KEY_IN_PROGRESS: &str = "in_progress";
pub const KEY_COMPLETED: &str = "completed";
pub const KEY_RELEASED: &str = "released";

/// A key to claim for a new request.
pub struct NewKey<'a> {
    pub owner: &'a str,
    pub key: &'a str,
    pub fingerprint: &'a str,
    pub order_id: &'a str,
    pub lock_id: &'a str,
    pub now_ms: i64,
}

/// The outcome of claiming a key.
#[derive(Debug)]
pub enum KeyClaim {
    /// This request holds the new key.
    New,
    /// The key exists: here is its row.
    Existing(KeyRow),
}

#[derive(Clone)]
pub struct Repository {
    pool: AnyPool,
    system: &'static str,
}

const SELECT_ORDER: &str = "SELECT id, status, total_cents, charge_id, reservation_id, created_at_ms FROM orders WHERE id = $1";
const SELECT_ITEMS: &str = "SELECT sku, qty FROM order_items WHERE order_id = $1 ORDER BY line_no";
const INSERT_ORDER: &str = "INSERT INTO orders (id, status, total_cents, currency, payment_method, charge_id, reservation_id, scenario, created_at_ms, updated_at_ms) VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6, $7, $7)";
const INSERT_ITEM: &str = "INSERT INTO order_items (order_id, line_no, sku, qty, unit_price_cents) VALUES ($1, $2, $3, $4, $5)";
const UPDATE_CHARGE: &str = "UPDATE orders SET charge_id = $1, updated_at_ms = $2 WHERE id = $3";
const UPDATE_STATUS: &str = "UPDATE orders SET status = $1, updated_at_ms = $2 WHERE id = $3";
// Only a pending order is confirmed: two runs of one order (a retry that took over a key whose holder
// was still alive) cannot both confirm it and enqueue two events.
const CONFIRM_ORDER: &str = "UPDATE orders SET status = $1, reservation_id = $2, updated_at_ms = $3 \
     WHERE id = $4 AND status = 'pending'";
const CLAIM_KEY: &str = "INSERT INTO idempotency_keys (owner, idempotency_key, request_fingerprint, \
     order_id, status, lock_id, locked_at_ms, response_status, response_body, created_at_ms, \
     updated_at_ms) VALUES ($1, $2, $3, $4, 'in_progress', $5, $6, NULL, NULL, $6, $6) \
     ON CONFLICT (owner, idempotency_key) DO NOTHING";
const SELECT_KEY: &str = "SELECT request_fingerprint, order_id, status, lock_id, locked_at_ms, \
     response_status, response_body FROM idempotency_keys WHERE owner = $1 AND idempotency_key = $2";
// Compare-and-set: a released key, or one whose holder's lease ran out, passes to exactly one retry
// (the lock the retry saw must still be the key's, so racing retries cannot both win).
const TAKE_OVER_KEY: &str = "UPDATE idempotency_keys SET status = 'in_progress', lock_id = $1, \
     locked_at_ms = $2, updated_at_ms = $2 WHERE owner = $3 AND idempotency_key = $4 \
     AND lock_id = $5 AND (status = 'released' OR (status = 'in_progress' AND locked_at_ms < $6))";
const COMPLETE_KEY: &str = "UPDATE idempotency_keys SET status = 'completed', response_status = $1, \
     response_body = $2, updated_at_ms = $3 WHERE owner = $4 AND idempotency_key = $5 \
     AND status = 'in_progress' AND lock_id = $6";
const RELEASE_KEY: &str = "UPDATE idempotency_keys SET status = 'released', updated_at_ms = $1 \
     WHERE owner = $2 AND idempotency_key = $3 AND status = 'in_progress' AND lock_id = $4";
const INSERT_OUTBOX: &str = "INSERT INTO outbox (id, aggregate_id, topic, message_key, event_type, payload, trace_context, created_at_ms, sent_at_ms, attempts, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, 0, NULL)";
const SELECT_PENDING: &str = "SELECT id, aggregate_id, topic, message_key, event_type, payload, trace_context, created_at_ms, attempts FROM outbox WHERE sent_at_ms IS NULL ORDER BY created_at_ms, id LIMIT $1";
const MARK_SENT: &str = "UPDATE outbox SET sent_at_ms = $1, attempts = attempts + 1, last_error = NULL WHERE id = $2 AND sent_at_ms IS NULL";
const MARK_FAILED: &str =
    "UPDATE outbox SET attempts = attempts + 1, last_error = $1 WHERE id = $2";
const COUNT_PENDING: &str =
    "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM outbox WHERE sent_at_ms IS NULL";

impl Repository {
    pub fn new(pool: AnyPool, system: &'static str) -> Self {
        Self { pool, system }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    fn span(&self, operation: &str, collection: &str, query: &str) -> tracing::Span {
        telemetry::db::span(self.system, operation, collection, query)
    }

    /// Unit prices of the given SKUs; SKUs that are not for sale are absent from the map.
    pub async fn prices(&self, skus: &[&str]) -> Result<HashMap<String, i64>, sqlx::Error> {
        let placeholders: Vec<String> = (1..=skus.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT sku, price_cents FROM products WHERE sku IN ({})",
            placeholders.join(", ")
        );
        let span = self.span(
            "SELECT",
            "products",
            "SELECT sku, price_cents FROM products WHERE sku IN (...)",
        );
        // Only `$N` placeholders are interpolated: the SKUs themselves are bound parameters.
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for sku in skus {
            query = query.bind(*sku);
        }
        let rows = query.fetch_all(self.pool()).traced(span).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("sku")?, r.try_get("price_cents")?)))
            .collect()
    }

    /// Stores a new `pending` order and its lines in one transaction.
    pub async fn insert_order(&self, o: &NewOrder<'_>) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(INSERT_ORDER)
            .bind(o.id)
            .bind(OrderStatus::Pending.as_str())
            .bind(o.total_cents)
            .bind(o.currency)
            .bind(o.payment_method)
            .bind(o.scenario)
            .bind(o.created_at_ms)
            .execute(&mut *tx)
            .traced(self.span("INSERT", "orders", INSERT_ORDER))
            .await?;
        let span = self.span("INSERT", "order_items", INSERT_ITEM);
        async {
            for (line_no, (item, price)) in o.items.iter().zip(o.unit_prices).enumerate() {
                sqlx::query(INSERT_ITEM)
                    .bind(o.id)
                    .bind(line_no as i64)
                    .bind(item.sku.as_str())
                    .bind(item.qty)
                    .bind(*price)
                    .execute(&mut *tx)
                    .await?;
            }
            Ok::<_, sqlx::Error>(())
        }
        .traced(span)
        .await?;
        tx.commit().await
    }

    pub async fn set_charge(
        &self,
        id: &str,
        charge_id: &str,
        now_ms: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(UPDATE_CHARGE)
            .bind(charge_id)
            .bind(now_ms)
            .bind(id)
            .execute(self.pool())
            .traced(self.span("UPDATE", "orders", UPDATE_CHARGE))
            .await?;
        Ok(())
    }

    pub async fn set_status(
        &self,
        id: &str,
        status: OrderStatus,
        now_ms: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(UPDATE_STATUS)
            .bind(status.as_str())
            .bind(now_ms)
            .bind(id)
            .execute(self.pool())
            .traced(self.span("UPDATE", "orders", UPDATE_STATUS))
            .await?;
        Ok(())
    }

    /// Confirms the order and enqueues its event in ONE transaction (the transactional outbox): either
    /// both happen or neither does, so no confirmed order lacks its event and no event lacks its order.
    /// False (and nothing written) when the order was no longer pending.
    pub async fn confirm_with_event(
        &self,
        id: &str,
        reservation_id: &str,
        event: &OutboxRow,
        now_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let confirmed = sqlx::query(CONFIRM_ORDER)
            .bind(OrderStatus::Confirmed.as_str())
            .bind(reservation_id)
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .traced(self.span("UPDATE", "orders", CONFIRM_ORDER))
            .await?
            .rows_affected();
        if confirmed != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(INSERT_OUTBOX)
            .bind(event.id.as_str())
            .bind(event.aggregate_id.as_str())
            .bind(event.topic.as_str())
            .bind(event.message_key.as_str())
            .bind(event.event_type.as_str())
            .bind(event.payload.as_str())
            .bind(event.trace_context.as_str())
            .bind(event.created_at_ms)
            .execute(&mut *tx)
            .traced(self.span("INSERT", "outbox", INSERT_OUTBOX))
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Inserts a client key held by `lock_id`, unless the caller already used the key.
    pub async fn claim_key(&self, new: &NewKey<'_>) -> Result<KeyClaim, sqlx::Error> {
        let inserted = sqlx::query(CLAIM_KEY)
            .bind(new.owner)
            .bind(new.key)
            .bind(new.fingerprint)
            .bind(new.order_id)
            .bind(new.lock_id)
            .bind(new.now_ms)
            .execute(self.pool())
            .traced(self.span("INSERT", "idempotency_keys", CLAIM_KEY))
            .await?
            .rows_affected();
        if inserted == 1 {
            return Ok(KeyClaim::New);
        }
        match self.key(new.owner, new.key).await? {
            Some(row) => Ok(KeyClaim::Existing(row)),
            // Nothing deletes keys: a conflicting row that vanished is a broken invariant.
            None => Err(sqlx::Error::RowNotFound),
        }
    }

    pub async fn key(&self, owner: &str, key: &str) -> Result<Option<KeyRow>, sqlx::Error> {
        sqlx::query(SELECT_KEY)
            .bind(owner)
            .bind(key)
            .fetch_optional(self.pool())
            .traced(self.span("SELECT", "idempotency_keys", SELECT_KEY))
            .await?
            .map(|r| {
                Ok(KeyRow {
                    request_fingerprint: r.try_get("request_fingerprint")?,
                    order_id: r.try_get("order_id")?,
                    status: r.try_get("status")?,
                    lock_id: r.try_get("lock_id")?,
                    locked_at_ms: r.try_get("locked_at_ms")?,
                    response_status: r.try_get("response_status")?,
                    response_body: r.try_get("response_body")?,
                })
            })
            .transpose()
    }

    /// Makes `lock_id` the holder of a key `seen` (its lock id when read) released, or locked before
    /// `cutoff_ms`; false when the key is completed, still inside its holder's lease, or another retry
    /// took it first.
    pub async fn take_over_key(
        &self,
        owner: &str,
        key: &str,
        seen: &str,
        lock_id: &str,
        now_ms: i64,
        cutoff_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query(TAKE_OVER_KEY)
            .bind(lock_id)
            .bind(now_ms)
            .bind(owner)
            .bind(key)
            .bind(seen)
            .bind(cutoff_ms)
            .execute(self.pool())
            .traced(self.span("UPDATE", "idempotency_keys", TAKE_OVER_KEY))
            .await?
            .rows_affected()
            == 1)
    }

    /// Stores the final answer of the key held by `lock_id`; false when this request no longer holds
    /// it (taken over after its lease ran out).
    pub async fn complete_key(
        &self,
        owner: &str,
        key: &str,
        lock_id: &str,
        status: u16,
        body: &str,
        now_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query(COMPLETE_KEY)
            .bind(i64::from(status))
            .bind(body)
            .bind(now_ms)
            .bind(owner)
            .bind(key)
            .bind(lock_id)
            .execute(self.pool())
            .traced(self.span("UPDATE", "idempotency_keys", COMPLETE_KEY))
            .await?
            .rows_affected()
            == 1)
    }

    /// Hands a key back after a retryable failure, so the next retry resumes its order at once.
    pub async fn release_key(
        &self,
        owner: &str,
        key: &str,
        lock_id: &str,
        now_ms: i64,
    ) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query(RELEASE_KEY)
            .bind(now_ms)
            .bind(owner)
            .bind(key)
            .bind(lock_id)
            .execute(self.pool())
            .traced(self.span("UPDATE", "idempotency_keys", RELEASE_KEY))
            .await?
            .rows_affected()
            == 1)
    }

    pub async fn get_order(&self, id: &str) -> Result<Option<Order>, sqlx::Error> {
        let Some(row) = sqlx::query(SELECT_ORDER)
            .bind(id)
            .fetch_optional(self.pool())
            .traced(self.span("SELECT", "orders", SELECT_ORDER))
            .await?
        else {
            return Ok(None);
        };
        let items = sqlx::query(SELECT_ITEMS)
            .bind(id)
            .fetch_all(self.pool())
            .traced(self.span("SELECT", "order_items", SELECT_ITEMS))
            .await?
            .iter()
            .map(|r| {
                Ok(LineItem {
                    sku: r.try_get("sku")?,
                    qty: r.try_get("qty")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let status: String = row.try_get("status")?;
        Ok(Some(Order {
            id: row.try_get("id")?,
            status: status
                .parse()
                .map_err(|e: String| sqlx::Error::Decode(e.into()))?,
            items,
            total_cents: row.try_get("total_cents")?,
            charge_id: row.try_get("charge_id")?,
            reservation_id: row.try_get("reservation_id")?,
            created_at_ms: row.try_get("created_at_ms")?,
        }))
    }

    /// The oldest unsent outbox rows. Not spanned: the relay polls it continuously, and a span per
    /// idle poll would drown the traces that matter.
    pub async fn pending_outbox(&self, limit: u32) -> Result<Vec<OutboxRow>, sqlx::Error> {
        sqlx::query(SELECT_PENDING)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                Ok(OutboxRow {
                    id: r.try_get("id")?,
                    aggregate_id: r.try_get("aggregate_id")?,
                    topic: r.try_get("topic")?,
                    message_key: r.try_get("message_key")?,
                    event_type: r.try_get("event_type")?,
                    payload: r.try_get("payload")?,
                    trace_context: r.try_get("trace_context")?,
                    created_at_ms: r.try_get("created_at_ms")?,
                    attempts: r.try_get("attempts")?,
                })
            })
            .collect()
    }

    /// Not spanned either: it runs once per published row, after the PRODUCER span has ended.
    pub async fn mark_sent(&self, id: &str, now_ms: i64) -> Result<(), sqlx::Error> {
        sqlx::query(MARK_SENT)
            .bind(now_ms)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn mark_failed(&self, id: &str, error: &str) -> Result<(), sqlx::Error> {
        sqlx::query(MARK_FAILED)
            .bind(error)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn count_pending_outbox(&self) -> Result<i64, sqlx::Error> {
        sqlx::query(COUNT_PENDING)
            .fetch_one(self.pool())
            .await?
            .try_get("n")
    }
}
