-- Client Idempotency-Keys of POST /orders (IETF httpapi idempotency-key draft). A key is bound to
-- the order it created and to a fingerprint of the request that first used it, so a retry with the
-- same key and body gets the first answer (and the same order, charged once) and the same key with
-- another body is refused. Keys are scoped by the caller the gateway authenticated (x-tracelab-user,
-- '' when there is none): two callers cannot collide on, or read, each other's keys.
CREATE TABLE idempotency_keys (
    owner               TEXT NOT NULL,
    idempotency_key     TEXT NOT NULL,
    -- SHA-256 of the canonical order (items and payment method; the card token is left out).
    request_fingerprint TEXT NOT NULL,
    order_id            TEXT NOT NULL,
    -- in_progress: a request holds the key (lock_id, since locked_at_ms);
    -- completed: response_status + response_body are the answer every retry gets;
    -- released: the holder failed with a retryable 5xx, a retry resumes the same order.
    status              TEXT NOT NULL,
    lock_id             TEXT NOT NULL,
    locked_at_ms        BIGINT NOT NULL,
    response_status     BIGINT,
    response_body       TEXT,
    created_at_ms       BIGINT NOT NULL,
    updated_at_ms       BIGINT NOT NULL,
    PRIMARY KEY (owner, idempotency_key)
);
