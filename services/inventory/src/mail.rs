//! The mail API client: `POST /v1/emails` at card-provider (the simulator of the outside world)
//! through the telemetry kit's instrumented client, so each e-mail is a real CLIENT span. Under
//! scenario `kafka.consumer_lag` it asks the simulator for its degraded mode (`X-Simulate: slow`),
//! and a consumer that waits for each e-mail falls behind.

use std::time::Duration;

use contracts::payments::IDEMPOTENCY_KEY_HEADER;
use contracts::provider::{Email, ProviderErrorBody, SIMULATE_HEADER, SIMULATE_SLOW, SendEmail};
use contracts::scenario::Scenario;
use reqwest_middleware::ClientWithMiddleware;

use crate::error::InventoryError;

#[derive(Debug, Clone)]
pub struct Mailer {
    url: String,
    client: ClientWithMiddleware,
}

impl Mailer {
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        Self {
            url: format!("{}/v1/emails", base_url.trim_end_matches('/')),
            client: telemetry::http::client_with(client),
        }
    }

    /// Sends the order's confirmation once: the key `email:ORDER` makes a resend after a failure
    /// (or a redelivered event) safe, the mail API answers the first e-mail again.
    pub async fn send_confirmation(
        &self,
        order_id: &str,
        scenario: Scenario,
    ) -> Result<Email, InventoryError> {
        let body = SendEmail {
            template: "order_confirmation".into(),
            data: [("order_id".to_owned(), order_id.to_owned())].into(),
        };
        let mut request = self
            .client
            .post(&self.url)
            .header(IDEMPOTENCY_KEY_HEADER, format!("email:{order_id}"))
            .json(&body);
        if scenario == Scenario::KafkaConsumerLag {
            request = request.header(SIMULATE_HEADER, SIMULATE_SLOW);
        }
        let response = request
            .send()
            .await
            .map_err(|e| InventoryError::Mail(format!("sending failed: {e}")))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|e| InventoryError::Mail(format!("unreadable {status} answer: {e}")));
        }
        let message = response
            .json::<ProviderErrorBody>()
            .await
            .map(|b| b.error.message)
            .unwrap_or_default();
        Err(InventoryError::Mail(format!("{status} {message}")))
    }
}
