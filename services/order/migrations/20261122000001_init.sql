-- order-service schema. One set of migrations for SQLite and PostgreSQL: integers (epoch ms) for
-- timestamps, TEXT ids, BIGINT money in cents, no engine-specific types.

CREATE TABLE products (
    sku         TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    price_cents BIGINT NOT NULL
);

INSERT INTO products (sku, name, price_cents) VALUES
    ('LAPTOP-1', 'Laptop 14"', 129900),
    ('MOUSE-1', 'Wireless mouse', 2500),
    ('KEYBOARD-1', 'Mechanical keyboard', 7900),
    ('MONITOR-1', '27" monitor', 34900),
    ('HEADPHONES-1', 'Noise-cancelling headphones', 19900),
    ('CABLE-1', 'USB-C cable', 1500);

CREATE TABLE orders (
    id             TEXT PRIMARY KEY,
    status         TEXT NOT NULL,
    total_cents    BIGINT NOT NULL,
    currency       TEXT NOT NULL,
    payment_method TEXT NOT NULL,
    charge_id      TEXT,
    reservation_id TEXT,
    scenario       TEXT NOT NULL,
    created_at_ms  BIGINT NOT NULL,
    updated_at_ms  BIGINT NOT NULL
);

CREATE TABLE order_items (
    order_id         TEXT NOT NULL REFERENCES orders (id),
    line_no          BIGINT NOT NULL,
    sku              TEXT NOT NULL,
    qty              BIGINT NOT NULL,
    unit_price_cents BIGINT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- Transactional outbox: written in the same transaction as the order's confirmation, published by the
-- relay, then marked sent. trace_context holds the W3C carrier (traceparent/tracestate/baggage) as JSON
-- so the PRODUCER span continues the checkout's trace.
CREATE TABLE outbox (
    id            TEXT PRIMARY KEY,
    aggregate_id  TEXT NOT NULL,
    topic         TEXT NOT NULL,
    message_key   TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    payload       TEXT NOT NULL,
    trace_context TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    sent_at_ms    BIGINT,
    attempts      BIGINT NOT NULL DEFAULT 0,
    last_error    TEXT
);

CREATE INDEX outbox_pending ON outbox (sent_at_ms, created_at_ms);
