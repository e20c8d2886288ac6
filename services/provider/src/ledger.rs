//! The simulated account: charges, refunds, e-mails and the idempotency store, in memory, bounded.
//!
//! A charge is recorded *before* the modelled latency elapses, as at a real provider: a client that
//! gives up (timeout) or crashes mid-call has still charged the card, and only a retry with the same
//! Idempotency-Key finds out what happened — which is why payment-service must send one.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use contracts::provider::{Charge, Email, Refund};
use serde_json::Value;

/// Most objects of each kind kept; the oldest are forgotten first.
pub const CAPACITY: usize = 100_000;

/// A stored answer for one Idempotency-Key.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The request parameters the key was first used with.
    pub fingerprint: String,
    pub status: u16,
    pub body: Value,
}

/// What [`Ledger::once`] did.
#[derive(Debug, Clone)]
pub enum Once {
    /// This request acted; its answer.
    Fresh(Stored),
    /// An earlier request with the same key and parameters acted; its answer.
    Replay(Stored),
    /// The key was first used with other parameters.
    Mismatch,
}

/// The account's books. Only reachable through [`Ledger`]'s lock.
#[derive(Debug, Default)]
pub struct Books {
    charges: HashMap<String, Charge>,
    charge_order: VecDeque<String>,
    refunds: VecDeque<Refund>,
    emails: VecDeque<Email>,
    idempotency: HashMap<String, Stored>,
    idempotency_order: VecDeque<String>,
    /// Attempts seen per key under `rate_limited`.
    attempts: HashMap<String, u32>,
}

fn push_bounded<T>(queue: &mut VecDeque<T>, item: T) -> Option<T> {
    queue.push_back(item);
    if queue.len() > CAPACITY {
        queue.pop_front()
    } else {
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundRefused {
    NoSuchCharge,
    NotPaid,
    Exceeds { left: i64 },
}

impl Books {
    pub fn insert_charge(&mut self, charge: Charge) {
        if let Some(old) = push_bounded(&mut self.charge_order, charge.id.clone()) {
            self.charges.remove(&old);
        }
        self.charges.insert(charge.id.clone(), charge);
    }

    /// Refunds `refund.amount` of its charge if the charge was paid and that much is left.
    pub fn refund(&mut self, refund: Refund) -> Result<Charge, RefundRefused> {
        let charge = self
            .charges
            .get_mut(&refund.charge)
            .ok_or(RefundRefused::NoSuchCharge)?;
        if !charge.paid {
            return Err(RefundRefused::NotPaid);
        }
        let left = charge.amount - charge.amount_refunded;
        if refund.amount > left {
            return Err(RefundRefused::Exceeds { left });
        }
        charge.amount_refunded += refund.amount;
        let charge = charge.clone();
        push_bounded(&mut self.refunds, refund);
        Ok(charge)
    }

    pub fn charge(&self, id: &str) -> Option<&Charge> {
        self.charges.get(id)
    }

    pub fn insert_email(&mut self, email: Email) {
        push_bounded(&mut self.emails, email);
    }
}

#[derive(Debug, Default)]
pub struct Ledger(Mutex<Books>);

impl Ledger {
    fn books(&self) -> MutexGuard<'_, Books> {
        // A panic while holding the lock leaves nothing half-written that matters to a simulator.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `act` at most once per Idempotency-Key: the first request with `key` acts and its
    /// answer is stored; later ones get that answer, or `Mismatch` with other parameters. Check,
    /// act and store happen under one lock (`act` does no I/O: the latency is served after it), so
    /// two concurrent requests with one key cannot both charge.
    pub fn once(
        &self,
        key: Option<&str>,
        fingerprint: &str,
        act: impl FnOnce(&mut Books) -> Stored,
    ) -> Once {
        let mut books = self.books();
        let Some(key) = key else {
            return Once::Fresh(act(&mut books));
        };
        if let Some(stored) = books.idempotency.get(key) {
            return if stored.fingerprint == fingerprint {
                Once::Replay(stored.clone())
            } else {
                Once::Mismatch
            };
        }
        let stored = act(&mut books);
        if let Some(old) = push_bounded(&mut books.idempotency_order, key.to_owned()) {
            books.idempotency.remove(&old);
        }
        books.idempotency.insert(key.to_owned(), stored.clone());
        Once::Fresh(stored)
    }

    /// Counts an attempt for `key` and says whether the rate limiter refuses it (the first
    /// `refused_attempts` of each key are refused).
    pub fn rate_limited(&self, key: &str, refused_attempts: u32) -> bool {
        let mut books = self.books();
        if books.attempts.len() > CAPACITY {
            books.attempts.clear();
        }
        let seen = books.attempts.entry(key.to_owned()).or_insert(0);
        *seen += 1;
        *seen <= refused_attempts
    }

    pub fn charge(&self, id: &str) -> Option<Charge> {
        self.books().charge(id).cloned()
    }

    /// Newest first, at most `limit`.
    pub fn charges(&self, limit: usize) -> Vec<Charge> {
        let books = self.books();
        books
            .charge_order
            .iter()
            .rev()
            .filter_map(|id| books.charges.get(id).cloned())
            .take(limit)
            .collect()
    }

    pub fn refunds(&self, limit: usize) -> Vec<Refund> {
        self.books()
            .refunds
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn emails(&self, limit: usize) -> Vec<Email> {
        self.books()
            .emails
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect()
    }
}

/// The outside world's latency: the one place in tracelab's checkout where time passes by
/// sleeping, because it stands for a network and a provider we do not run.
pub async fn respond_after(latency: Duration) {
    tokio::time::sleep(latency).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(fp: &str) -> Stored {
        Stored {
            fingerprint: fp.into(),
            status: 200,
            body: Value::Null,
        }
    }

    #[test]
    fn a_key_acts_once_and_replays() {
        let ledger = Ledger::default();
        let mut acted = 0;
        assert!(matches!(
            ledger.once(Some("k"), "a", |_| {
                acted += 1;
                stored("a")
            }),
            Once::Fresh(_)
        ));
        assert!(matches!(
            ledger.once(Some("k"), "a", |_| unreachable!()),
            Once::Replay(_)
        ));
        assert!(matches!(
            ledger.once(Some("k"), "b", |_| unreachable!()),
            Once::Mismatch
        ));
        assert_eq!(acted, 1);
    }

    #[test]
    fn the_rate_limiter_refuses_the_first_attempts_of_each_key() {
        let ledger = Ledger::default();
        assert!(ledger.rate_limited("k", 2));
        assert!(ledger.rate_limited("k", 2));
        assert!(!ledger.rate_limited("k", 2));
        assert!(ledger.rate_limited("other", 2));
    }
}
