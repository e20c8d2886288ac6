//! The inventory tables: stock, reservations, the stock-movement history (and its optional index —
//! the `inventory.slow_query` fix), processed Kafka events and sent confirmation e-mails. Every
//! statement runs inside a `telemetry::db::span` CLIENT span carrying its parameter-free query text.

use contracts::orders::LineItem;
use service_kit::db::{Database, TracedExt};
use sqlx::{Any, AnyPool, AssertSqlSafe, Row, Transaction};
use uuid::Uuid;

use crate::db::now_ms;
use crate::error::InventoryError;

/// The documented fix of `inventory.slow_query`.
pub const MOVEMENT_INDEX: &str = "idx_stock_movements_sku";

/// The stock-movement audit `inventory.slow_query` runs per SKU before reserving: without
/// [`MOVEMENT_INDEX`] it scans the whole history table.
pub const MOVEMENT_QUERY: &str = "SELECT CAST(COALESCE(SUM(delta), 0) AS BIGINT) AS net_movement, \
     COUNT(*) AS movements FROM stock_movements WHERE sku = $1";

const HAS_MOVEMENTS: &str = "SELECT id FROM stock_movements LIMIT 1";
// One statement, so it is atomic; a recursive CTE because it runs unchanged on SQLite and PostgreSQL.
// A few catalogue SKUs get rare rows among many historical ones: the audited SKU is selective, which
// is what lets the index help.
const SEED_MOVEMENTS: &str = "INSERT INTO stock_movements (id, sku, delta, reason, created_at_ms) \
     WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < $1) \
     SELECT 'hist-' || n, \
            CASE n % 1000 WHEN 0 THEN 'LAPTOP-1' WHEN 1 THEN 'MOUSE-1' ELSE 'HIST-' || (n % 2000) END, \
            (n % 7) - 3, 'history', $2 - CAST(n AS BIGINT) * 1000 \
     FROM seq";
const CREATE_MOVEMENT_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS idx_stock_movements_sku ON stock_movements (sku)";
const DROP_MOVEMENT_INDEX: &str = "DROP INDEX IF EXISTS idx_stock_movements_sku";
const ANALYZE_MOVEMENTS: &str = "ANALYZE stock_movements";
const SQLITE_INDEX_EXISTS: &str =
    "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'index' AND name = $1";
const POSTGRES_INDEX_EXISTS: &str = "SELECT COUNT(*) AS n FROM pg_indexes WHERE indexname = $1";

const SELECT_RESERVATION: &str =
    "SELECT id, order_id, status FROM reservations WHERE order_id = $1";
const INSERT_RESERVATION: &str = "INSERT INTO reservations (id, order_id, status, created_at_ms) \
     VALUES ($1, $2, 'reserved', $3) ON CONFLICT (order_id) DO NOTHING";
const UPDATE_STOCK: &str = "UPDATE stock SET available = available - $1, reserved = reserved + $1, \
     updated_at_ms = $2 WHERE sku = $3 AND available >= $1";
const SELECT_STOCK: &str = "SELECT available, reserved FROM stock WHERE sku = $1";
const SET_STOCK: &str = "UPDATE stock SET available = $1, updated_at_ms = $2 WHERE sku = $3";
const INSERT_RESERVATION_ITEM: &str =
    "INSERT INTO reservation_items (reservation_id, sku, qty) VALUES ($1, $2, $3)";
const INSERT_MOVEMENT: &str = "INSERT INTO stock_movements (id, sku, delta, reason, created_at_ms) \
     VALUES ($1, $2, $3, 'reservation', $4)";
const INSERT_PROCESSED_EVENT: &str = "INSERT INTO processed_events (event_id, event_type, order_id, \
     processed_at_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING";
const COMMIT_RESERVATION: &str = "UPDATE reservations SET status = 'committed', committed_at_ms = $1 \
     WHERE order_id = $2 AND status = 'reserved'";
const SELECT_EMAIL: &str = "SELECT order_id FROM confirmation_emails WHERE order_id = $1";
const INSERT_EMAIL: &str = "INSERT INTO confirmation_emails (order_id, event_id, sent_at_ms) \
     VALUES ($1, $2, $3) ON CONFLICT (order_id) DO NOTHING";

pub const STATUS_RESERVED: &str = "reserved";
pub const STATUS_COMMITTED: &str = "committed";

/// A reservation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRow {
    pub id: String,
    pub order_id: String,
    pub status: String,
}

/// What reserving resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    Created(ReservationRow),
    /// The order already had a reservation (a retry): nothing changed.
    Existing(ReservationRow),
}

/// What handling an `order.placed` event did to the reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// The event id was seen before: nothing changed.
    Duplicate,
    /// First delivery; `reservation_committed` says whether a reserved reservation was found.
    Processed { reservation_committed: bool },
}

/// Net change and row count of one SKU's movement history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MovementSummary {
    pub net: i64,
    pub movements: i64,
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

    pub fn db_system(&self) -> &'static str {
        self.system()
    }

    /// Seeds `count` rows of movement history when the table is empty; returns the rows added.
    pub async fn seed_movement_history(&self, count: i64) -> Result<u64, sqlx::Error> {
        if count <= 0 {
            return Ok(0);
        }
        let seeded = sqlx::query(HAS_MOVEMENTS)
            .fetch_optional(self.pool())
            .await?
            .is_some();
        if seeded {
            return Ok(0);
        }
        let rows = sqlx::query(SEED_MOVEMENTS)
            .bind(count)
            .bind(now_ms())
            .execute(self.pool())
            .await?
            .rows_affected();
        sqlx::query(ANALYZE_MOVEMENTS).execute(self.pool()).await?;
        Ok(rows)
    }

    pub async fn movement_index_exists(&self) -> Result<bool, sqlx::Error> {
        let sql = if self.system() == "postgresql" {
            POSTGRES_INDEX_EXISTS
        } else {
            SQLITE_INDEX_EXISTS
        };
        let n: i64 = sqlx::query(sql)
            .bind(MOVEMENT_INDEX)
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        Ok(n > 0)
    }

    /// Creates (the fix) or drops (the bug) the movement index, then refreshes planner statistics.
    pub async fn set_movement_index(&self, enabled: bool) -> Result<(), sqlx::Error> {
        let (sql, op) = if enabled {
            (CREATE_MOVEMENT_INDEX, "CREATE INDEX")
        } else {
            (DROP_MOVEMENT_INDEX, "DROP INDEX")
        };
        sqlx::query(sql)
            .execute(self.pool())
            .traced(self.span(op, "stock_movements", sql))
            .await?;
        sqlx::query(ANALYZE_MOVEMENTS).execute(self.pool()).await?;
        Ok(())
    }

    /// The audit query of `inventory.slow_query` (db span `SELECT stock_movements`).
    pub async fn movement_summary(&self, sku: &str) -> Result<MovementSummary, sqlx::Error> {
        let row = sqlx::query(MOVEMENT_QUERY)
            .bind(sku)
            .fetch_one(self.pool())
            .traced(self.span("SELECT", "stock_movements", MOVEMENT_QUERY))
            .await?;
        Ok(MovementSummary {
            net: row.try_get("net_movement")?,
            movements: row.try_get("movements")?,
        })
    }

    /// The database's plan for [`MOVEMENT_QUERY`] (`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on
    /// PostgreSQL): shows whether the fix is in place.
    pub async fn movement_plan(&self, sku: &str) -> Result<Vec<String>, InventoryError> {
        // EXPLAIN takes no bind parameters everywhere: inline the SKU, after checking it is a plain
        // catalogue code, so nothing but [A-Z0-9_-] ever reaches the SQL text.
        if sku.is_empty()
            || sku.len() > 64
            || !sku
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(InventoryError::Validation(format!(
                "invalid SKU for EXPLAIN: {sku:?}"
            )));
        }
        let query = MOVEMENT_QUERY.replace("$1", &format!("'{sku}'"));
        let (sql, column) = if self.system() == "postgresql" {
            (format!("EXPLAIN {query}"), "QUERY PLAN")
        } else {
            (format!("EXPLAIN QUERY PLAN {query}"), "detail")
        };
        // Not a cached prepared statement: SQLite bakes the plan into an EXPLAIN statement and never
        // re-checks the schema for it, so a cached one keeps showing the plan of an index since dropped.
        let rows = sqlx::query(AssertSqlSafe(sql))
            .persistent(false)
            .fetch_all(self.pool())
            .await?;
        let mut plan = Vec::with_capacity(rows.len());
        for row in rows {
            plan.push(row.try_get::<String, _>(column)?);
        }
        Ok(plan)
    }

    pub async fn reservation_by_order(
        &self,
        order_id: &str,
    ) -> Result<Option<ReservationRow>, sqlx::Error> {
        sqlx::query(SELECT_RESERVATION)
            .bind(order_id)
            .fetch_optional(self.pool())
            .traced(self.span("SELECT", "reservations", SELECT_RESERVATION))
            .await?
            .map(|r| reservation_from_row(&r))
            .transpose()
    }

    /// `(available, reserved)` of a SKU, `None` when the SKU is unknown.
    /// Puts `available` units of `sku` on the shelf (a restock, or emptying it for the
    /// `inventory.out_of_stock` scenario); false for an unknown SKU.
    pub async fn set_available(&self, sku: &str, available: i64) -> Result<bool, sqlx::Error> {
        let updated = sqlx::query(SET_STOCK)
            .bind(available)
            .bind(now_ms())
            .bind(sku)
            .execute(self.pool())
            .traced(self.span("UPDATE", "stock", SET_STOCK))
            .await?
            .rows_affected();
        Ok(updated == 1)
    }

    pub async fn stock_of(&self, sku: &str) -> Result<Option<(i64, i64)>, sqlx::Error> {
        let row = sqlx::query(SELECT_STOCK)
            .bind(sku)
            .fetch_optional(self.pool())
            .traced(self.span("SELECT", "stock", SELECT_STOCK))
            .await?;
        row.map(|r| Ok((r.try_get("available")?, r.try_get("reserved")?)))
            .transpose()
    }

    /// Reserves every item for `order_id` in ONE transaction: all decrements happen or none does.
    pub async fn reserve(
        &self,
        order_id: &str,
        items: &[LineItem],
    ) -> Result<Reserved, InventoryError> {
        let id = format!("res_{}", Uuid::now_v7().simple());
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let inserted = sqlx::query(INSERT_RESERVATION)
            .bind(id.as_str())
            .bind(order_id)
            .bind(now)
            .execute(&mut *tx)
            .traced(self.span("INSERT", "reservations", INSERT_RESERVATION))
            .await?
            .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            let existing = self
                .reservation_by_order(order_id)
                .await?
                .ok_or(sqlx::Error::RowNotFound)?;
            return Ok(Reserved::Existing(existing));
        }
        for item in items {
            self.take_stock(&mut tx, &id, item, now).await?;
        }
        tx.commit().await?;
        Ok(Reserved::Created(ReservationRow {
            id,
            order_id: order_id.to_owned(),
            status: STATUS_RESERVED.to_owned(),
        }))
    }

    async fn take_stock(
        &self,
        tx: &mut Transaction<'static, Any>,
        reservation_id: &str,
        item: &LineItem,
        now: i64,
    ) -> Result<(), InventoryError> {
        let updated = sqlx::query(UPDATE_STOCK)
            .bind(item.qty)
            .bind(now)
            .bind(item.sku.as_str())
            .execute(&mut **tx)
            .traced(self.span("UPDATE", "stock", UPDATE_STOCK))
            .await?
            .rows_affected();
        if updated == 0 {
            // Why not: unknown SKU, or not enough of it. Read inside the transaction for the answer.
            let row = sqlx::query(SELECT_STOCK)
                .bind(item.sku.as_str())
                .fetch_optional(&mut **tx)
                .traced(self.span("SELECT", "stock", SELECT_STOCK))
                .await?;
            return Err(match row {
                None => InventoryError::UnknownSku(item.sku.clone()),
                Some(row) => InventoryError::OutOfStock {
                    sku: item.sku.clone(),
                    requested: item.qty,
                    available: row.try_get("available")?,
                },
            });
        }
        sqlx::query(INSERT_RESERVATION_ITEM)
            .bind(reservation_id)
            .bind(item.sku.as_str())
            .bind(item.qty)
            .execute(&mut **tx)
            .traced(self.span("INSERT", "reservation_items", INSERT_RESERVATION_ITEM))
            .await?;
        sqlx::query(INSERT_MOVEMENT)
            .bind(format!("mov_{}", Uuid::now_v7().simple()))
            .bind(item.sku.as_str())
            .bind(-item.qty)
            .bind(now)
            .execute(&mut **tx)
            .traced(self.span("INSERT", "stock_movements", INSERT_MOVEMENT))
            .await?;
        Ok(())
    }

    /// Records the event id and commits the order's reservation in one transaction; a
    /// redelivered event id changes nothing.
    pub async fn commit_reservation(
        &self,
        event_id: &str,
        event_type: &str,
        order_id: &str,
    ) -> Result<EventOutcome, sqlx::Error> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let first = sqlx::query(INSERT_PROCESSED_EVENT)
            .bind(event_id)
            .bind(event_type)
            .bind(order_id)
            .bind(now)
            .execute(&mut *tx)
            .traced(self.span("INSERT", "processed_events", INSERT_PROCESSED_EVENT))
            .await?
            .rows_affected()
            == 1;
        if !first {
            tx.rollback().await?;
            return Ok(EventOutcome::Duplicate);
        }
        let committed = sqlx::query(COMMIT_RESERVATION)
            .bind(now)
            .bind(order_id)
            .execute(&mut *tx)
            .traced(self.span("UPDATE", "reservations", COMMIT_RESERVATION))
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(EventOutcome::Processed {
            reservation_committed: committed > 0,
        })
    }

    /// Whether the order's confirmation e-mail was recorded as sent. Kept apart from
    /// `processed_events`: an event can be processed (reservation committed) while its e-mail step
    /// failed, and a redelivery must then redo only the e-mail.
    pub async fn email_sent(&self, order_id: &str) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query(SELECT_EMAIL)
            .bind(order_id)
            .fetch_optional(self.pool())
            .traced(self.span("SELECT", "confirmation_emails", SELECT_EMAIL))
            .await?
            .is_some())
    }

    /// Records a sent confirmation e-mail; false when one was already sent for the order.
    pub async fn record_email(&self, order_id: &str, event_id: &str) -> Result<bool, sqlx::Error> {
        Ok(sqlx::query(INSERT_EMAIL)
            .bind(order_id)
            .bind(event_id)
            .bind(now_ms())
            .execute(self.pool())
            .traced(self.span("INSERT", "confirmation_emails", INSERT_EMAIL))
            .await?
            .rows_affected()
            == 1)
    }
}

fn reservation_from_row(row: &sqlx::any::AnyRow) -> Result<ReservationRow, sqlx::Error> {
    Ok(ReservationRow {
        id: row.try_get("id")?,
        order_id: row.try_get("order_id")?,
        status: row.try_get("status")?,
    })
}
