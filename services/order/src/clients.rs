//! HTTP clients for payment-service and inventory-service. Calls go through the telemetry kit's client
//! (CLIENT span + traceparent/baggage injection); the `propagation.broken` scenario deliberately uses a
//! plain client for the payment hop to show what a missing propagator does to a trace.

use std::time::Duration;

use contracts::error::ErrorBody;
use reqwest_middleware::ClientWithMiddleware;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// What a downstream call answered, decoded.
pub enum Reply<T> {
    /// 2xx with the decoded body.
    Ok(T),
    /// A 4xx the caller handles (402 declined, 409 out of stock) with its JSON error body.
    Rejected(reqwest::StatusCode, ErrorBody),
}

#[derive(Clone)]
pub struct Downstream {
    service: &'static str,
    base_url: String,
    timeout: Duration,
    traced: ClientWithMiddleware,
    plain: ClientWithMiddleware,
}

impl Downstream {
    pub fn new(service: &'static str, base_url: &str, timeout: Duration) -> Self {
        Self {
            service,
            base_url: base_url.trim_end_matches('/').to_owned(),
            timeout,
            traced: telemetry::http::client(),
            // No middleware: no CLIENT span and, above all, no traceparent/baggage headers.
            plain: reqwest_middleware::ClientBuilder::new(reqwest::Client::new()).build(),
        }
    }

    /// POSTs `body` as JSON to `path`. `propagate = false` sends it without trace context.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        headers: &[(&str, &str)],
        propagate: bool,
    ) -> Result<Reply<T>, ApiError> {
        let client = if propagate { &self.traced } else { &self.plain };
        let mut request = client
            .post(format!("{}{path}", self.base_url))
            .timeout(self.timeout)
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.map_err(|e| self.send_error(&e))?;
        self.decode(response).await
    }

    /// GETs `path` (always with trace context).
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Reply<T>, ApiError> {
        let response = self
            .traced
            .get(format!("{}{path}", self.base_url))
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| self.send_error(&e))?;
        self.decode(response).await
    }

    async fn decode<T: DeserializeOwned>(
        &self,
        response: reqwest::Response,
    ) -> Result<Reply<T>, ApiError> {
        let status = response.status();
        if status.is_success() {
            let value = response
                .json::<T>()
                .await
                .map_err(|e| self.reqwest_error(&e))?;
            return Ok(Reply::Ok(value));
        }
        let text = response.text().await.map_err(|e| self.reqwest_error(&e))?;
        if status.is_client_error()
            && let Ok(body) = serde_json::from_str::<ErrorBody>(&text)
        {
            return Ok(Reply::Rejected(status, body));
        }
        let message = match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => format!("{status}: {}", body.error.message),
            Err(_) => format!("{status}: {}", truncate(&text, 200)),
        };
        if status == reqwest::StatusCode::GATEWAY_TIMEOUT {
            return Err(ApiError::UpstreamGatewayTimeout {
                service: self.service,
                message,
            });
        }
        Err(ApiError::Upstream {
            service: self.service,
            message,
        })
    }

    fn send_error(&self, err: &reqwest_middleware::Error) -> ApiError {
        if err.is_timeout() {
            self.timeout_error()
        } else {
            ApiError::Upstream {
                service: self.service,
                message: crate::error::error_chain(err),
            }
        }
    }

    fn reqwest_error(&self, err: &reqwest::Error) -> ApiError {
        if err.is_timeout() {
            self.timeout_error()
        } else {
            ApiError::Upstream {
                service: self.service,
                message: crate::error::error_chain(err),
            }
        }
    }

    fn timeout_error(&self) -> ApiError {
        ApiError::UpstreamTimeout {
            service: self.service,
            timeout_ms: self.timeout.as_millis() as u64,
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
