//! The outbox relay: publishes pending outbox rows to Kafka and marks them sent. Each publish gets a
//! PRODUCER span parented on the trace context stored with the row, so the message continues the
//! checkout's trace even though it is sent later, from this task. With the broker unreachable rows stay
//! pending and are retried with exponential backoff; nothing is lost, and this single relay never sends
//! a row again once it was acknowledged (downstream consumers de-duplicate on the envelope id for the
//! crash-between-ack-and-mark window).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::trace::{Status, TraceContextExt};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use tokio::sync::{Notify, watch};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::db::now_ms;
use crate::domain::repository::{OutboxRow, Repository};

const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub struct RelayConfig {
    pub brokers: String,
    pub message_timeout: Duration,
    pub poll_interval: Duration,
    pub batch_size: u32,
}

pub struct Relay {
    repo: Repository,
    producer: FutureProducer,
    notify: Arc<Notify>,
    poll_interval: Duration,
    batch_size: u32,
}

impl Relay {
    pub fn new(
        repo: Repository,
        notify: Arc<Notify>,
        config: &RelayConfig,
    ) -> anyhow::Result<Self> {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &config.brokers)
            .set("client.id", "order-service-outbox")
            // Idempotent producer: librdkafka's own retries never duplicate or reorder a message.
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                config.message_timeout.as_millis().to_string(),
            )
            .set("linger.ms", "5")
            .create()
            .context("creating the Kafka producer")?;
        Ok(Self {
            repo,
            producer,
            notify,
            poll_interval: config.poll_interval,
            batch_size: config.batch_size.max(1),
        })
    }

    /// Publishes until `stop` turns true. Woken early by `notify` when an order commits an event.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut backoff = MIN_BACKOFF;
        loop {
            if *stop.borrow() {
                return;
            }
            let wait = match self.publish_batch().await {
                Ok(published) if published == self.batch_size as usize => Duration::ZERO,
                Ok(_) => {
                    backoff = MIN_BACKOFF;
                    self.poll_interval
                }
                Err(err) => {
                    tracing::warn!(
                        error = %crate::error::error_chain(err.as_ref()),
                        retry_in_ms = backoff.as_millis() as u64,
                        "outbox relay: publishing failed, rows stay pending"
                    );
                    let wait = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    wait
                }
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = self.notify.notified(), if backoff == MIN_BACKOFF => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Sends up to one batch of pending rows; returns how many were published and marked sent. Each
    /// row is marked sent right after its own acknowledgement, and a failure (publish or mark) is
    /// handled for that row alone: one failed `mark_sent` neither stops the other rows from being
    /// marked nor makes the next round resend them. An error means at least one row stays pending.
    pub async fn publish_batch(&self) -> anyhow::Result<usize> {
        let rows = self
            .repo
            .pending_outbox(self.batch_size)
            .await
            .context("reading pending outbox rows")?;
        if rows.is_empty() {
            return Ok(0);
        }
        // All sends are in flight together; the idempotent producer keeps per-partition order.
        let results =
            futures::future::join_all(rows.iter().map(|row| self.publish_and_mark(row))).await;
        let mut published = 0;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(()) => published += 1,
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            Some(err) => {
                Err(err.context(format!("{published}/{} outbox rows published", rows.len())))
            }
            None => Ok(published),
        }
    }

    /// Publishes one row and marks it sent as soon as the broker acknowledged it.
    async fn publish_and_mark(&self, row: &OutboxRow) -> anyhow::Result<()> {
        if let Err(err) = self.publish(row).await {
            let message = err.to_string();
            if let Err(db_err) = self.repo.mark_failed(&row.id, &message).await {
                tracing::warn!(outbox.id = %row.id, error = %db_err, "could not record an outbox failure");
            }
            return Err(err);
        }
        self.repo.mark_sent(&row.id, now_ms()).await.map_err(|err| {
            // The broker has the message; this row alone will be sent again (consumers de-duplicate
            // on the envelope id).
            tracing::warn!(
                outbox.id = %row.id,
                error = %err,
                "outbox row published but not marked sent; it will be published again"
            );
            anyhow::Error::new(err).context(format!("marking outbox row {} sent", row.id))
        })
    }

    async fn publish(&self, row: &OutboxRow) -> anyhow::Result<()> {
        let parsed: Result<HashMap<String, String>, _> = serde_json::from_str(&row.trace_context);
        let carrier = parsed.as_ref().cloned().unwrap_or_default();
        let parent = telemetry::propagation::extract(&carrier);
        let corrupt = match &parsed {
            Err(err) => Some(format!("not a JSON object of strings: {err}")),
            Ok(c) if c.contains_key("traceparent") && !parent.span().span_context().is_valid() => {
                Some("its traceparent does not parse".to_owned())
            }
            Ok(_) => None,
        };
        let span = telemetry::kafka::producer_span(&row.topic);
        // Continue the checkout's trace: the stored context becomes the PRODUCER span's parent.
        let _ = span.set_parent(parent);
        if let Some(problem) = corrupt {
            // The message still goes out (the event matters more than its trace), but as the root of
            // a new trace: say so, with the row, instead of silently dropping the checkout's context.
            span.in_scope(|| {
                tracing::warn!(
                    outbox.id = %row.id,
                    order.id = %row.aggregate_id,
                    problem = %problem,
                    "outbox row has a corrupt trace context; publishing it without its checkout's trace"
                );
            });
        }
        span.set_attribute("messaging.message.id", row.id.clone());
        span.set_attribute("messaging.kafka.message.key", row.message_key.clone());
        span.set_attribute("order.id", row.aggregate_id.clone());

        let headers = telemetry::kafka::inject(
            &span,
            OwnedHeaders::new()
                .insert(Header {
                    key: "content-type",
                    value: Some("application/json"),
                })
                .insert(Header {
                    key: "event-type",
                    value: Some(row.event_type.as_str()),
                }),
        );
        let record = FutureRecord::to(&row.topic)
            .key(&row.message_key)
            .payload(&row.payload)
            .headers(headers);
        let delivery = self
            .producer
            .send(record, Timeout::Never)
            .instrument(span.clone())
            .await;
        match delivery {
            Ok(delivery) => {
                span.set_attribute(
                    "messaging.destination.partition.id",
                    delivery.partition.to_string(),
                );
                span.set_attribute("messaging.kafka.offset", delivery.offset);
                Ok(())
            }
            Err((err, _message)) => {
                span.set_status(Status::error(err.to_string()));
                Err(anyhow::Error::new(err).context(format!("publishing outbox row {}", row.id)))
            }
        }
    }

    pub async fn pending(&self) -> anyhow::Result<i64> {
        Ok(self.repo.count_pending_outbox().await?)
    }
}
