//! The `orders` consumer: a StreamConsumer in group `inventory-service` that processes each message
//! inside telemetry's CONSUMER span (child of the producer span, plus a link), records consumer lag
//! and message age, and commits an offset only once it and every message before it are processed.
//!
//! Up to [`Concurrency`] messages are processed at once. With 1 — the shipped default and scenario
//! `kafka.consumer_lag`'s bug — each message waits for the previous one's e-mail, so when the mail
//! API is slow every later message starts later and lag grows. Raising it (`PUT /admin/consumer`)
//! is the fix: messages overlap, and [`OffsetTracker`] still commits in order, so a crash never
//! skips an unprocessed message.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use contracts::scenario::{ATTRIBUTE, BAGGAGE_KEY, Scenario};
use opentelemetry::KeyValue;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, ClientContext};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio::task::JoinSet;
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

/// How many messages the consumer processes at once; shared with `PUT /admin/consumer`.
#[derive(Debug, Clone)]
pub struct Concurrency(Arc<AtomicUsize>);

/// The most messages in flight at once that `PUT /admin/consumer` accepts.
pub const MAX_CONCURRENCY: usize = 64;

impl Concurrency {
    pub fn new(n: usize) -> Self {
        Self(Arc::new(AtomicUsize::new(n.clamp(1, MAX_CONCURRENCY))))
    }
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
    pub fn set(&self, n: usize) {
        self.0.store(n.clamp(1, MAX_CONCURRENCY), Ordering::Relaxed);
    }
}

/// In-order commits over out-of-order completion: per partition, the offsets still in flight and
/// the highest one finished. The committable position is the lowest offset in flight (or one past
/// the highest finished when none is), so a commit never covers a message not yet processed.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<(String, i32), (BTreeSet<i64>, Option<i64>)>,
}

impl OffsetTracker {
    pub fn start(&mut self, topic: &str, partition: i32, offset: i64) {
        self.partitions
            .entry((topic.to_owned(), partition))
            .or_default()
            .0
            .insert(offset);
    }

    /// Marks `offset` done; the position to commit now (the next offset to read), if it moved.
    pub fn finish(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let (in_flight, done) = self.partitions.get_mut(&(topic.to_owned(), partition))?;
        let before = Self::position(in_flight, *done);
        in_flight.remove(&offset);
        *done = Some(done.map_or(offset, |d| d.max(offset)));
        let after = Self::position(in_flight, *done);
        (after > before).then_some(after).flatten()
    }

    fn position(in_flight: &BTreeSet<i64>, done: Option<i64>) -> Option<i64> {
        match in_flight.first() {
            Some(lowest) => Some(*lowest),
            None => done.map(|d| d + 1),
        }
    }
}

/// What processing one message needs; cloned into each in-flight task.
#[derive(Clone)]
struct Worker {
    group: String,
    handler: OrderEventHandler,
    metrics: Metrics,
    watermarks: Watermarks,
}

/// The consume loop and what it needs.
pub struct OrderConsumer {
    consumer: OrdersStreamConsumer,
    worker: Worker,
    concurrency: Concurrency,
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
        concurrency: Concurrency,
    ) -> Self {
        let watermarks = consumer.context().watermarks.clone();
        Self {
            consumer,
            worker: Worker {
                group,
                handler,
                metrics,
                watermarks,
            },
            concurrency,
        }
    }

    fn commit(&self, topic: &str, partition: i32, next: i64) {
        let mut list = TopicPartitionList::new();
        if let Err(err) = list.add_partition_offset(topic, partition, Offset::Offset(next)) {
            tracing::warn!(error = %err, "offset not committable");
            return;
        }
        if let Err(err) = self.consumer.commit(&list, CommitMode::Async) {
            tracing::warn!(error = %err, "offset commit failed; the message may be redelivered");
        }
    }

    fn finished(
        &self,
        tracker: &mut OffsetTracker,
        done: Result<(String, i32, i64), tokio::task::JoinError>,
    ) {
        match done {
            Ok((topic, partition, offset)) => {
                if let Some(next) = tracker.finish(&topic, partition, offset) {
                    self.commit(&topic, partition, next);
                }
            }
            // Its offset stays in flight, so nothing after it is committed: after a restart the
            // message is redelivered (the handler is idempotent).
            Err(err) => tracing::error!(error = %err, "processing a message panicked"),
        }
    }

    /// Consumes until `shutdown` turns true. Messages being processed are finished first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(group = %self.worker.group, concurrency = self.concurrency.get(), "orders consumer started");
        let mut tasks: JoinSet<(String, i32, i64)> = JoinSet::new();
        let mut tracker = OffsetTracker::default();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let room = tasks.len() < self.concurrency.get();
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    self.finished(&mut tracker, done);
                }
                received = self.consumer.recv(), if room => match received {
                    Ok(msg) => {
                        let msg = msg.detach();
                        tracker.start(msg.topic(), msg.partition(), msg.offset());
                        let worker = self.worker.clone();
                        tasks.spawn(async move {
                            worker.process(&msg).await;
                            (msg.topic().to_owned(), msg.partition(), msg.offset())
                        });
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
        while let Some(done) = tasks.join_next().await {
            self.finished(&mut tracker, done);
        }
        // The drained tasks queued their (async) commits; closing the consumer serves them. Not
        // Sync: with the broker down that could block shutdown for a long time, and a redelivery
        // after a restart is harmless (the handler is idempotent).
        close_bounded(self.consumer, CLOSE_TIMEOUT).await;
        tracing::info!("orders consumer stopped");
    }
}

impl Worker {
    async fn process(&self, msg: &OwnedMessage) {
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
    fn lag(&self, msg: &OwnedMessage) -> Option<i64> {
        self.watermarks
            .high(msg.topic(), msg.partition())
            .map(|high| (high - msg.offset()).max(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_never_pass_a_message_still_in_flight() {
        let mut t = OffsetTracker::default();
        for o in 10..=12 {
            t.start("orders", 0, o);
        }
        assert_eq!(t.finish("orders", 0, 11), None, "10 is still in flight");
        assert_eq!(t.finish("orders", 0, 12), None);
        assert_eq!(
            t.finish("orders", 0, 10),
            Some(13),
            "all done: past the highest"
        );
        t.start("orders", 0, 13);
        t.start("orders", 1, 5);
        assert_eq!(
            t.finish("orders", 1, 5),
            Some(6),
            "partitions are independent"
        );
        assert_eq!(t.finish("orders", 0, 13), Some(14));
    }

    #[test]
    fn in_order_completion_commits_each_step() {
        let mut t = OffsetTracker::default();
        t.start("orders", 0, 0);
        t.start("orders", 0, 1);
        assert_eq!(t.finish("orders", 0, 0), Some(1));
        assert_eq!(t.finish("orders", 0, 1), Some(2));
    }

    #[test]
    fn concurrency_is_clamped() {
        let c = Concurrency::new(0);
        assert_eq!(c.get(), 1);
        c.set(1000);
        assert_eq!(c.get(), MAX_CONCURRENCY);
    }
}
