//! Client `Idempotency-Key`s on `POST /orders` (IETF httpapi idempotency-key draft).
//!
//! A request with a key claims it in `idempotency_keys` (PRIMARY KEY (owner, key)) after validation and
//! pricing, binding the key to a fresh order id and to a fingerprint of the request. Then:
//! - the holder runs the checkout and stores its final answer (2xx and 4xx: 201, 402, 409, 422) for
//!   every retry to replay byte for byte;
//! - a retryable failure (5xx: a payment timeout, an unreachable service) releases the key, so the next
//!   retry resumes the SAME order — whose charge key `{order_id}:charge` makes payment-service return
//!   the first charge instead of charging again;
//! - a retry with another body gets 422 `idempotency_key_reused`;
//! - a duplicate arriving while the holder runs waits for its answer (bounded by
//!   `IDEMPOTENCY_WAIT_MS`), then gets 409 `idempotency_in_progress`;
//! - a holder that vanished (request cancelled, process crashed) loses the key once its lease
//!   (`IDEMPOTENCY_LEASE_MS`) ran out: the next retry takes it over and resumes the order.

use std::time::Instant;

use contracts::orders::{CreateOrderRequest, Order};
use sha2::{Digest, Sha256};

use crate::db::now_ms;
use crate::domain::repository::{
    KEY_COMPLETED, KEY_IN_PROGRESS, KEY_RELEASED, KeyClaim, KeyRow, NewKey,
};
use crate::error::ApiError;
use crate::startup::AppState;

/// A validated client key, scoped to the caller the gateway authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    /// `x-tracelab-user`, or `""` for a caller without one.
    pub owner: String,
    pub key: String,
}

impl ClientKey {
    /// Parses the header value. The draft defines it as a Structured Field string
    /// (`Idempotency-Key: "8e03978e-..."`); the bare token form Stripe uses is accepted too.
    pub fn parse(owner: Option<&str>, raw: &[u8]) -> Result<Self, ApiError> {
        let invalid = || {
            ApiError::InvalidIdempotencyKey(
                "Idempotency-Key must be 1-255 visible ASCII characters, optionally as a quoted \
                 string"
                    .into(),
            )
        };
        let raw = std::str::from_utf8(raw).map_err(|_| invalid())?.trim();
        let key = match raw.strip_prefix('"') {
            Some(rest) => unquote(rest).ok_or_else(invalid)?,
            None => raw.to_owned(),
        };
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid());
        }
        Ok(Self {
            owner: owner.unwrap_or_default().to_owned(),
            key,
        })
    }
}

/// The body of an sf-string after its opening quote: `\"` and `\\` escapes, a closing quote last.
fn unquote(rest: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                e @ ('"' | '\\') => out.push(e),
                _ => return None,
            },
            '"' => return chars.next().is_none().then_some(out),
            c => out.push(c),
        }
    }
    None
}

/// SHA-256 over the canonical order: each line's SKU and quantity, in order, and the payment method.
/// The card token is deliberately left out — no trace of a token is stored anywhere, and a hash of a
/// short token could be reversed by trying candidates — so a retry that only changes the token is
/// treated as the same request.
pub fn fingerprint(req: &CreateOrderRequest) -> String {
    let canonical = serde_json::json!({
        "v": 1,
        "items": req.items.iter().map(|i| (i.sku.as_str(), i.qty)).collect::<Vec<_>>(),
        "payment_method": req.payment.method,
    });
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored answer of an earlier request with the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub order_id: String,
    pub status: u16,
    pub body: String,
}

/// This request holds the key.
#[derive(Debug, Clone)]
pub struct Held {
    pub order_id: String,
    lock_id: String,
    /// True when an earlier request already worked on the order (released key, or expired lease).
    pub resumed: bool,
}

pub enum Acquired {
    Held(Held),
    Replay(StoredAnswer),
}

/// Claims `key` for a request whose order would get `fresh_order_id`, or finds what an earlier
/// request with the same key left.
pub async fn acquire(
    state: &AppState,
    key: &ClientKey,
    fingerprint: &str,
    fresh_order_id: &str,
) -> Result<Acquired, ApiError> {
    let lock_id = uuid::Uuid::new_v4().simple().to_string();
    let claim = state
        .repo
        .claim_key(&NewKey {
            owner: &key.owner,
            key: &key.key,
            fingerprint,
            order_id: fresh_order_id,
            lock_id: &lock_id,
            now_ms: now_ms(),
        })
        .await?;
    let mut row = match claim {
        KeyClaim::New => {
            return Ok(Acquired::Held(Held {
                order_id: fresh_order_id.to_owned(),
                lock_id,
                resumed: false,
            }));
        }
        KeyClaim::Existing(row) => row,
    };
    if row.request_fingerprint != fingerprint {
        return Err(ApiError::IdempotencyKeyReused(key.key.clone()));
    }
    let deadline = Instant::now() + state.idempotency.wait;
    let lease_ms = i64::try_from(state.idempotency.lease.as_millis()).unwrap_or(i64::MAX);
    loop {
        if let Some(answer) = stored_answer(&row) {
            return Ok(Acquired::Replay(answer));
        }
        let now = now_ms();
        let cutoff = now.saturating_sub(lease_ms);
        let takeable = row.status == KEY_RELEASED
            || (row.status == KEY_IN_PROGRESS && row.locked_at_ms < cutoff);
        if takeable
            && state
                .repo
                .take_over_key(&key.owner, &key.key, &row.lock_id, &lock_id, now, cutoff)
                .await?
        {
            if row.status == KEY_IN_PROGRESS {
                tracing::warn!(
                    order.id = %row.order_id,
                    locked_at_ms = row.locked_at_ms,
                    "taking over an Idempotency-Key whose holder's lease ran out (cancelled or \
                     crashed request); resuming its order"
                );
            }
            return Ok(Acquired::Held(Held {
                order_id: row.order_id,
                lock_id,
                resumed: true,
            }));
        }
        if Instant::now() >= deadline {
            return Err(ApiError::IdempotencyInProgress);
        }
        tokio::time::sleep(POLL).await;
        row = state
            .repo
            .key(&key.owner, &key.key)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
    }
}

const POLL: std::time::Duration = std::time::Duration::from_millis(20);

fn stored_answer(row: &KeyRow) -> Option<StoredAnswer> {
    if row.status != KEY_COMPLETED {
        return None;
    }
    Some(StoredAnswer {
        order_id: row.order_id.clone(),
        status: u16::try_from(row.response_status?).ok()?,
        body: row.response_body.clone()?,
    })
}

/// Ends this request's hold on the key: a final answer (2xx, 4xx) is stored for retries to replay, a
/// retryable one (5xx) releases the key. Failing to do either is logged, not returned: the answer
/// itself is right, and a retry takes the key over once the lease has run out.
pub async fn finish(
    state: &AppState,
    key: &ClientKey,
    held: &Held,
    result: &Result<Order, ApiError>,
) {
    let answer = match result {
        Ok(order) => serde_json::to_string(order).map(|body| (201, body)),
        Err(err) if err.status().is_client_error() => {
            serde_json::to_string(&err.body()).map(|body| (err.status().as_u16(), body))
        }
        Err(_) => {
            let released = state
                .repo
                .release_key(&key.owner, &key.key, &held.lock_id, now_ms())
                .await;
            log_lost(released, &held.order_id, "release");
            return;
        }
    };
    let stored = match answer {
        Ok((status, body)) => {
            state
                .repo
                .complete_key(&key.owner, &key.key, &held.lock_id, status, &body, now_ms())
                .await
        }
        Err(err) => {
            tracing::error!(order.id = %held.order_id, error = %err, "could not encode the answer to store");
            return;
        }
    };
    log_lost(stored, &held.order_id, "store the answer of");
}

fn log_lost(result: Result<bool, sqlx::Error>, order_id: &str, what: &str) {
    match result {
        Ok(true) => {}
        Ok(false) => tracing::warn!(
            order.id = %order_id,
            "could not {what} the Idempotency-Key: a retry took it over after this request's lease ran out"
        ),
        Err(err) => tracing::error!(
            order.id = %order_id,
            error = %crate::error::error_chain(&err),
            "could not {what} the Idempotency-Key; a retry takes it over once the lease ran out"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::orders::{LineItem, PaymentInfo};

    fn req(qty: i64, token: &str) -> CreateOrderRequest {
        CreateOrderRequest {
            items: vec![LineItem {
                sku: "LAPTOP-1".into(),
                qty,
            }],
            payment: PaymentInfo {
                method: "card".into(),
                token: token.into(),
            },
        }
    }

    #[test]
    fn keys_parse_bare_and_quoted() {
        let k = ClientKey::parse(Some("alice"), b"abc-123").unwrap();
        assert_eq!((k.owner.as_str(), k.key.as_str()), ("alice", "abc-123"));
        let k = ClientKey::parse(None, br#""8e03978e-40d5""#).unwrap();
        assert_eq!((k.owner.as_str(), k.key.as_str()), ("", "8e03978e-40d5"));
        assert_eq!(ClientKey::parse(None, br#""a\"b""#).unwrap().key, "a\"b");
        for bad in [
            &b""[..],
            b"\"\"",
            b"\"open",
            b"two words",
            b"\"x\"y",
            &[0xff, 0xfe],
        ] {
            assert!(ClientKey::parse(None, bad).is_err(), "{bad:?}");
        }
        assert!(ClientKey::parse(None, "k".repeat(256).as_bytes()).is_err());
    }

    #[test]
    fn fingerprint_covers_the_order_but_not_the_token() {
        let base = fingerprint(&req(1, "tok_test_123"));
        assert_eq!(base.len(), 64);
        assert_eq!(base, fingerprint(&req(1, "tok_other")));
        assert_ne!(base, fingerprint(&req(2, "tok_test_123")));
        assert!(!base.contains("tok"));
    }
}
