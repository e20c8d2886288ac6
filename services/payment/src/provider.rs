//! The card provider, over real HTTP: `card-provider` (tracelab's simulator of the outside world,
//! `services/provider`) in the demo, any Stripe-like API in principle. Every attempt is its own
//! CLIENT span (`stripe.create_charge`, `stripe.create_refund`) with the real `server.address`,
//! `server.port` and `http.response.status_code`, plus `http.request.resend_count` on retries.
//!
//! Retries are the scenario `payment.slow`: when the provider's rate limiter answers 429 (or it
//! answers 5xx, or the connection fails) the call is retried after [`ProviderPolicy::retry_backoff_ms`].
//! The shipped default, a fixed 600 ms pause, is the bug: two refusals put 1200 ms of waiting into
//! `charge`, visible in the trace as the gaps between attempts. The fix is a short backoff,
//! switchable at run time (`PUT /admin/provider {"retry_backoff_ms": 25}`). Retrying is safe
//! because every attempt carries the same `Idempotency-Key`: the provider charges once per key.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use contracts::provider::{
    Charge, CreateCharge, CreateRefund, ProviderErrorBody, REPLAYED_HEADER, Refund,
    SIMULATE_DECLINE, SIMULATE_HEADER, SIMULATE_RATE_LIMITED, SIMULATE_SLOW,
};
use contracts::scenario::Scenario;
use http::Extensions;
use reqwest::StatusCode;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_tracing::{
    OtelName, ReqwestOtelSpanBackend, TracingMiddleware, default_on_request_end, reqwest_otel_span,
};
use serde::{Deserialize, Serialize};
use tracing::Span;

use crate::config::ProviderConfig;
use crate::domain::card::CardToken;

/// The provider's name in spans (`payment.processor`) and span names.
pub const PROCESSOR: &str = "stripe";

/// The part of the provider client a workshop changes at run time (`GET/PUT /admin/provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderPolicy {
    /// Per-attempt timeout. A slow provider (`provider.slow`) then fails fast with 504 instead of
    /// holding the checkout for seconds.
    pub timeout_ms: u64,
    /// Attempts per call, the first included (1 = no retries).
    pub max_attempts: u32,
    /// Pause before each retry.
    pub retry_backoff_ms: u64,
}

impl ProviderPolicy {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=120_000).contains(&self.timeout_ms) {
            return Err("timeout_ms must be between 1 and 120000".into());
        }
        if !(1..=10).contains(&self.max_attempts) {
            return Err("max_attempts must be between 1 and 10".into());
        }
        if self.retry_backoff_ms > 60_000 {
            return Err("retry_backoff_ms must be at most 60000".into());
        }
        Ok(())
    }
}

/// What the provider answered to a charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderCharge {
    Approved { provider_charge_id: String },
    Declined { reason: String },
}

/// Why a provider call has no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderFailure {
    /// Connection refused or reset, 429 or 5xx on every attempt: the provider did not take the
    /// request (or, for 5xx, a retry with the same key will find out).
    #[error("card provider unavailable after {attempts} attempt(s): {last}")]
    Unavailable { attempts: u32, last: String },
    /// No answer within the timeout: the outcome is unknown until a retry with the same key.
    #[error("card provider did not answer within {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },
    /// The provider refused the request itself (a 4xx other than 402/429): our bug, not the card's.
    #[error("card provider rejected the request: {0}")]
    Rejected(String),
}

/// Which resend of a call this request is (semconv `http.request.resend_count`), for the span.
#[derive(Debug, Clone, Copy)]
struct ResendCount(u32);

/// reqwest-tracing's span plus the attributes the provider calls add.
struct ProviderSpans;

impl ReqwestOtelSpanBackend for ProviderSpans {
    fn on_request_start(req: &reqwest::Request, ext: &mut Extensions) -> Span {
        let name = ext
            .get::<OtelName>()
            .map(|n| n.0.clone())
            .unwrap_or_else(|| req.method().as_str().to_owned().into());
        let resend = ext.get::<ResendCount>().map_or(0, |r| r.0);
        let span = reqwest_otel_span!(
            name = name,
            req,
            peer.service = PROCESSOR,
            url.full = %req.url(),
            http.request.resend_count = tracing::field::Empty,
            payment.provider.id = tracing::field::Empty,
        );
        if resend > 0 {
            span.record("http.request.resend_count", i64::from(resend));
        }
        span
    }

    fn on_request_end(
        span: &Span,
        outcome: &reqwest_middleware::Result<reqwest::Response>,
        _: &mut Extensions,
    ) {
        default_on_request_end(span, outcome);
    }
}

#[derive(Debug, Clone)]
pub struct CardProvider {
    base_url: String,
    client: ClientWithMiddleware,
    policy: Arc<RwLock<ProviderPolicy>>,
}

/// One attempt's result, before the retry loop judges it.
enum Attempt<T> {
    Done(T),
    Declined(String),
    Retryable(String),
    Failed(ProviderFailure),
}

impl CardProvider {
    pub fn new(config: &ProviderConfig) -> Self {
        let client = ClientBuilder::new(reqwest::Client::new())
            .with(TracingMiddleware::<ProviderSpans>::new())
            .with(telemetry::http::client::InjectContext)
            .build();
        Self {
            base_url: config.provider_url.trim_end_matches('/').to_owned(),
            client,
            policy: Arc::new(RwLock::new(config.policy())),
        }
    }

    pub fn policy(&self) -> ProviderPolicy {
        *self.policy.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_policy(&self, policy: ProviderPolicy) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = policy;
    }

    /// The test-mode header value that makes the simulator play `scenario`, if it plays a part in it.
    fn simulate(scenario: Scenario) -> Option<&'static str> {
        match scenario {
            Scenario::PaymentSlow => Some(SIMULATE_RATE_LIMITED),
            Scenario::ProviderSlow => Some(SIMULATE_SLOW),
            Scenario::PaymentDeclined => Some(SIMULATE_DECLINE),
            _ => None,
        }
    }

    /// POSTs `body` to `path` with the retry policy; every attempt is a CLIENT span named `name`.
    async fn call<B: Serialize, T: for<'de> Deserialize<'de>>(
        &self,
        name: &'static str,
        path: &str,
        idempotency_key: &str,
        scenario: Scenario,
        body: &B,
    ) -> Result<Result<T, String>, ProviderFailure> {
        let policy = self.policy();
        let mut last = String::new();
        for attempt in 0..policy.max_attempts {
            if attempt > 0 {
                tracing::info!(
                    http.request.resend_count = attempt,
                    backoff_ms = policy.retry_backoff_ms,
                    "retrying the card provider after: {last}"
                );
                tokio::time::sleep(Duration::from_millis(policy.retry_backoff_ms)).await;
            }
            let mut request = self
                .client
                .post(format!("{}{path}", self.base_url))
                .timeout(Duration::from_millis(policy.timeout_ms))
                .header(contracts::payments::IDEMPOTENCY_KEY_HEADER, idempotency_key)
                .json(body)
                .with_extension(OtelName(name.into()))
                .with_extension(ResendCount(attempt));
            if let Some(mode) = Self::simulate(scenario) {
                request = request.header(SIMULATE_HEADER, mode);
            }
            match self.attempt::<T>(request, policy).await {
                Attempt::Done(value) => return Ok(Ok(value)),
                Attempt::Declined(reason) => return Ok(Err(reason)),
                Attempt::Retryable(why) => last = why,
                Attempt::Failed(failure) => return Err(failure),
            }
        }
        Err(ProviderFailure::Unavailable {
            attempts: policy.max_attempts,
            last,
        })
    }

    async fn attempt<T: for<'de> Deserialize<'de>>(
        &self,
        request: reqwest_middleware::RequestBuilder,
        policy: ProviderPolicy,
    ) -> Attempt<T> {
        let response = match request.send().await {
            Ok(r) => r,
            Err(err) if err.is_timeout() => {
                return Attempt::Failed(ProviderFailure::Timeout {
                    timeout_ms: policy.timeout_ms,
                });
            }
            Err(err) => return Attempt::Retryable(format!("connection failed: {err}")),
        };
        let status = response.status();
        if response.headers().contains_key(REPLAYED_HEADER) {
            tracing::info!("the provider replayed its answer to this Idempotency-Key");
        }
        if status.is_success() {
            return match response.json::<T>().await {
                Ok(value) => Attempt::Done(value),
                Err(err) if err.is_timeout() => Attempt::Failed(ProviderFailure::Timeout {
                    timeout_ms: policy.timeout_ms,
                }),
                Err(err) => Attempt::Failed(ProviderFailure::Rejected(format!(
                    "unreadable {status} answer: {err}"
                ))),
            };
        }
        let message = match response.json::<ProviderErrorBody>().await {
            Ok(body) => body.error.message,
            Err(_) => status.to_string(),
        };
        match status {
            StatusCode::PAYMENT_REQUIRED => Attempt::Declined(message),
            StatusCode::TOO_MANY_REQUESTS => Attempt::Retryable(format!("429 {message}")),
            s if s.is_server_error() => Attempt::Retryable(format!("{s} {message}")),
            s => Attempt::Failed(ProviderFailure::Rejected(format!("{s} {message}"))),
        }
    }

    /// `stripe.create_charge`: the provider approves or declines (its test tokens and test mode
    /// decide, see `services/provider`).
    pub async fn create_charge(
        &self,
        idempotency_key: &str,
        token: &CardToken,
        amount_cents: i64,
        currency: &str,
        order_id: &str,
        scenario: Scenario,
    ) -> Result<ProviderCharge, ProviderFailure> {
        let body = CreateCharge {
            amount: amount_cents,
            currency: currency.to_ascii_lowercase(),
            source: token.expose().to_owned(),
            description: None,
            metadata: [("order_id".to_owned(), order_id.to_owned())].into(),
        };
        let answer = self
            .call::<_, Charge>(
                "stripe.create_charge",
                "/v1/charges",
                idempotency_key,
                scenario,
                &body,
            )
            .await?;
        Ok(match answer {
            Ok(charge) => ProviderCharge::Approved {
                provider_charge_id: charge.id,
            },
            Err(reason) => ProviderCharge::Declined { reason },
        })
    }

    /// `stripe.create_refund`, once per refund: `idempotency_key` makes a retried refund safe.
    pub async fn create_refund(
        &self,
        idempotency_key: &str,
        provider_charge_id: &str,
        amount_cents: i64,
        scenario: Scenario,
    ) -> Result<String, ProviderFailure> {
        let body = CreateRefund {
            charge: provider_charge_id.to_owned(),
            amount: Some(amount_cents),
        };
        // A refund is never "declined": a 402 here would be the provider's bug.
        match self
            .call::<_, Refund>(
                "stripe.create_refund",
                "/v1/refunds",
                idempotency_key,
                scenario,
                &body,
            )
            .await?
        {
            Ok(refund) => Ok(refund.id),
            Err(reason) => Err(ProviderFailure::Rejected(reason)),
        }
    }
}
