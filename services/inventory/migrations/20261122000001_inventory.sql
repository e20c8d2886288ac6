-- One schema for SQLite and PostgreSQL (sqlx Any): integers for timestamps (epoch ms), TEXT ids.

CREATE TABLE IF NOT EXISTS products (
    sku   TEXT PRIMARY KEY,
    name  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS stock (
    sku            TEXT PRIMARY KEY REFERENCES products (sku),
    available      BIGINT NOT NULL CHECK (available >= 0),
    reserved       BIGINT NOT NULL DEFAULT 0,
    updated_at_ms  BIGINT NOT NULL
);

-- One reservation per order (UNIQUE order_id): a retried reservation returns the first one.
CREATE TABLE IF NOT EXISTS reservations (
    id               TEXT PRIMARY KEY,
    order_id         TEXT NOT NULL UNIQUE,
    status           TEXT NOT NULL,          -- reserved | committed
    created_at_ms    BIGINT NOT NULL,
    committed_at_ms  BIGINT
);

CREATE TABLE IF NOT EXISTS reservation_items (
    reservation_id  TEXT NOT NULL REFERENCES reservations (id),
    sku             TEXT NOT NULL REFERENCES products (sku),
    qty             BIGINT NOT NULL,
    PRIMARY KEY (reservation_id, sku)
);

-- Every stock change, plus seeded history. Deliberately WITHOUT an index on sku: scenario
-- inventory.slow_query aggregates it per SKU, and the documented fix is idx_stock_movements_sku
-- (created and dropped at run time, see PUT /admin/slow-query).
CREATE TABLE IF NOT EXISTS stock_movements (
    id             TEXT PRIMARY KEY,
    sku            TEXT NOT NULL,
    delta          BIGINT NOT NULL,
    reason         TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL
);

-- Kafka events already handled, by envelope id: a redelivered event changes nothing.
CREATE TABLE IF NOT EXISTS processed_events (
    event_id         TEXT PRIMARY KEY,
    event_type       TEXT NOT NULL,
    order_id         TEXT NOT NULL,
    processed_at_ms  BIGINT NOT NULL
);

-- The simulated confirmation e-mails, one per order (no address or other PII is kept).
CREATE TABLE IF NOT EXISTS confirmation_emails (
    order_id    TEXT PRIMARY KEY,
    event_id    TEXT NOT NULL,
    sent_at_ms  BIGINT NOT NULL
);
