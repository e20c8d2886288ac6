//! The `orders` consumer: a StreamConsumer in group `inventory-service` that processes each message
//! inside telemetry's CONSUMER span (child of the producer span, plus a link), records consumer lag
//! and message age, and commits the offset only after processing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use contracts::scenario::{ATTRIBUTE, BAGGAGE_KEY, Scenario};
use opentelemetry::KeyValue;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, ClientContext};
use tokio::sync::watch;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::Config;
use crate::db::now_ms;
use crate::domain::events::OrderEventHandler;
use crate::error::cause_chain;
use crate::metrics::Metrics;

/// Attempts per message before it is logged as failed and skipped (its offset committed) so one
/// poisonous message cannot stall the partition.
const MAX_ATTEMPTS: u32 = 3;
/// How often librdkafka reports statistics, which carry each partition's high watermark.
const STATISTICS_INTERVAL_MS: &str = "500";

/// High watermark per (topic, partition), as last reported by librdkafka's statistics. The
/// consumer's fetcher learns it from every fetch response, so reading it costs no broker round
/// trip on the hot path.
#[derive(Debug, Clone, Default)]
pub struct Watermarks(Arc<Mutex<HashMap<(String, i32), i64>>>);

impl Watermarks {
    pub fn high(&self, topic: &str, partition: i32) -> Option<i64> {
        self.0
            .lock()
            .ok()
            .and_then(|w| w.get(&(topic.to_owned(), partition)).copied())
    }
}

/// The consumer's rdkafka context: keeps [`Watermarks`] up to date from the statistics callback.
#[derive(Debug, Clone, Default)]
pub struct LagContext {
    watermarks: Watermarks,
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: Statistics) {
        let Ok(mut watermarks) = self.watermarks.0.lock() else {
            return;
        };
        for (topic, stats) in statistics.topics {
            for (partition, p) in stats.partitions {
                // Partition -1 is librdkafka's internal UA partition; -1001 means "not known yet".
                if partition >= 0 && p.hi_offset >= 0 {
                    watermarks.insert((topic.clone(), partition), p.hi_offset);
                }
            }
        }
    }
}

impl ConsumerContext for LagContext {}

pub type OrdersStreamConsumer = StreamConsumer<LagContext>;

/// Creates the consumer and subscribes it to the topic.
pub fn create_consumer(config: &Config, brokers: &str) -> KafkaResult<OrdersStreamConsumer> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", brokers)
        .set("group.id", &config.kafka_group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("client.id", "inventory-service")
        .set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
    if config.kafka_group_protocol != "classic" {
        client.set("group.protocol", &config.kafka_group_protocol);
    }
    let consumer: OrdersStreamConsumer = client.create_with_context(LagContext::default())?;
    consumer.subscribe(&[config.kafka_topic.as_str()])?;
    Ok(consumer)
}

/// The consume loop and what it needs.
pub struct OrderConsumer {
    consumer: OrdersStreamConsumer,
    group: String,
    handler: OrderEventHandler,
    metrics: Metrics,
    watermarks: Watermarks,
}

/// How long shutdown waits for the consumer to leave its group.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Closes `consumer` (leave the group, serve the queued commit) off the async workers, waiting
/// at most `timeout`. librdkafka's close has no timeout of its own and blocks until the broker
/// answers: with the broker gone it never returns, and on a tokio worker it would freeze the
/// runtime. Past the timeout the closing thread is left behind; process exit ends it.
async fn close_bounded(consumer: OrdersStreamConsumer, timeout: Duration) {
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("kafka-close".into())
        .spawn(move || {
            drop(consumer);
            let _ = closed_tx.send(());
        });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "could not start the consumer-close thread");
        return;
    }
    if tokio::time::timeout(timeout, closed_rx).await.is_err() {
        tracing::warn!(
            timeout_ms = timeout.as_millis() as u64,
            "kafka consumer did not close in time (broker unreachable?); stopping without it"
        );
    }
}

impl OrderConsumer {
    pub fn new(
        consumer: OrdersStreamConsumer,
        group: String,
        handler: OrderEventHandler,
        metrics: Metrics,
    ) -> Self {
        let watermarks = consumer.context().watermarks.clone();
        Self {
            consumer,
            group,
            handler,
            metrics,
            watermarks,
        }
    }

    /// Consumes until `shutdown` turns true. A message being processed is finished first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(group = %self.group, "orders consumer started");
        loop {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                received = self.consumer.recv() => match received {
                    Ok(msg) => {
                        self.process(&msg).await;
                        if let Err(err) = self.consumer.commit_message(&msg, CommitMode::Async) {
                            tracing::warn!(error = %err, "offset commit failed; the message may be redelivered");
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "kafka receive failed");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                            _ = shutdown.changed() => {}
                        }
                    }
                }
            }
        }
        // Queue a commit of the final position; closing the consumer (on drop) serves it. Not Sync:
        // with the broker down that could block shutdown for a long time, and a redelivery after a
        // restart is harmless (the handler is idempotent).
        if let Err(err) = self.consumer.commit_consumer_state(CommitMode::Async) {
            tracing::debug!(error = %err, "final offset commit skipped");
        }
        close_bounded(self.consumer, CLOSE_TIMEOUT).await;
        tracing::info!("orders consumer stopped");
    }

    async fn process(&self, msg: &BorrowedMessage<'_>) {
        let span = telemetry::kafka::consumer_span(msg, &self.group);
        let lag = self.lag(msg);
        async {
            let current = tracing::Span::current();
            let scenario =
                Scenario::from_baggage(telemetry::baggage::get(BAGGAGE_KEY).as_deref());
            current.set_attribute(ATTRIBUTE, scenario.name());
            let partition = KeyValue::new("messaging.destination.partition.id", msg.partition().to_string());
            if let Some(lag) = lag {
                current.set_attribute("messaging.kafka.consumer.lag", lag);
                self.metrics.consumer_lag.record(
                    lag,
                    &[KeyValue::new("messaging.destination.name", msg.topic().to_owned()), partition],
                );
            }
            let envelope = match OrderEventHandler::decode(msg.payload()) {
                Ok(envelope) => envelope,
                Err(err) => {
                    current.record("otel.status_code", "ERROR");
                    current.record("error.type", "undecodable_event");
                    tracing::error!(
                        exception.type = "UndecodableEvent",
                        exception.message = %err,
                        "exception"
                    );
                    return;
                }
            };
            current.set_attribute("messaging.message.id", envelope.id.to_string());
            let age_ms = (now_ms() - envelope.occurred_at_ms).max(0);
            current.set_attribute("tracelab.message.age_ms", age_ms);
            self.metrics.message_age.record(
                age_ms as f64 / 1000.0,
                &[KeyValue::new("messaging.destination.name", msg.topic().to_owned())],
            );
            for attempt in 1..=MAX_ATTEMPTS {
                match self.handler.handle(&envelope, scenario).await {
                    Ok(_) => return,
                    Err(err) if attempt < MAX_ATTEMPTS => {
                        tracing::warn!(attempt, error = %cause_chain(&err), "event processing failed; retrying");
                        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                    }
                    Err(err) => {
                        current.record("otel.status_code", "ERROR");
                        current.record("error.type", err.code());
                        tracing::error!(
                            exception.type = "EventProcessingFailed",
                            exception.message = %cause_chain(&err),
                            "exception"
                        );
                    }
                }
            }
        }
        .instrument(span)
        .await;
    }

    /// High watermark − offset of this message (the messages not yet processed, itself included);
    /// `None` until librdkafka's first statistics report.
    fn lag(&self, msg: &BorrowedMessage<'_>) -> Option<i64> {
        self.watermarks
            .high(msg.topic(), msg.partition())
            .map(|high| (high - msg.offset()).max(0))
    }
}
