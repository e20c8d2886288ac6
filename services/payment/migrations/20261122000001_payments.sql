-- One schema for SQLite and PostgreSQL (sqlx Any): integers for timestamps (epoch ms) and TEXT ids.

-- A charge is claimed (status 'pending') under its idempotency key BEFORE the provider is called; the
-- UNIQUE constraint is what makes concurrent retries with the same key charge the card at most once.
CREATE TABLE IF NOT EXISTS charges (
    id                  TEXT PRIMARY KEY,
    idempotency_key     TEXT NOT NULL UNIQUE,
    -- order|amount|currency|method: a reused key with a different request is rejected, not replayed.
    request_fingerprint TEXT NOT NULL,
    order_id            TEXT NOT NULL,
    amount_cents        BIGINT NOT NULL,
    currency            TEXT NOT NULL,
    method              TEXT NOT NULL,
    -- The most of a card we ever keep: never the token, never a card number.
    card_last4          TEXT NOT NULL,
    status              TEXT NOT NULL,            -- pending | succeeded | declined
    provider_charge_id  TEXT,
    decline_reason      TEXT,
    created_at_ms       BIGINT NOT NULL,
    completed_at_ms     BIGINT
);

CREATE INDEX IF NOT EXISTS idx_charges_order_id ON charges (order_id);

-- At most one refund per charge (UNIQUE charge_id): a retried refund returns the first one.
CREATE TABLE IF NOT EXISTS refunds (
    id                  TEXT PRIMARY KEY,
    charge_id           TEXT NOT NULL UNIQUE REFERENCES charges (id),
    order_id            TEXT NOT NULL,
    amount_cents        BIGINT NOT NULL,
    status              TEXT NOT NULL,            -- pending | succeeded
    provider_refund_id  TEXT,
    created_at_ms       BIGINT NOT NULL,
    completed_at_ms     BIGINT
);
