//! A Kafka round trip over librdkafka's in-process MockCluster (a real Kafka-protocol
//! broker) carries the trace: the CONSUMER span lands in the producer's trace, as a
//! child of the PRODUCER span and with a link to it, and baggage rides along.

use std::time::Duration;

use opentelemetry::trace::SpanKind;
use rdkafka::{
    ClientConfig, Message, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    message::OwnedHeaders,
    mocking::MockCluster,
    producer::{FutureProducer, FutureRecord},
};
use telemetry::testing::{self, attribute, span_named};
use tracing::Instrument;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_span_joins_the_producer_trace_with_a_link() {
    let t = testing::init();
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("orders", 1, 1).expect("topic");
    let brokers = cluster.bootstrap_servers();

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();

    // Produce inside a request-like parent span that carries baggage.
    let parent = tracing::info_span!("place_order");
    let trace_id = parent.in_scope(|| telemetry::current_trace_id().unwrap());
    let send = async {
        let span = tracing::info_span!("with_baggage");
        telemetry::baggage::attach(&span, &[("tracelab.scenario", "kafka.consumer_lag")]);
        async {
            let producer_span = telemetry::kafka::producer_span("orders");
            let headers = telemetry::kafka::inject(&producer_span, OwnedHeaders::new());
            let delivery = producer
                .send(
                    FutureRecord::to("orders")
                        .key("ord-1")
                        .payload("{}")
                        .headers(headers),
                    Duration::from_secs(10),
                )
                .instrument(producer_span.clone())
                .await
                .expect("delivered");
            telemetry::kafka::record_delivery(&producer_span, delivery.partition, delivery.offset);
        }
        .instrument(span)
        .await;
    };
    send.instrument(parent).await;

    // Assign the partition directly: no group rebalance to wait for.
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "inventory-service")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("orders", 0, rdkafka::Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("message within 30 s")
        .expect("message");
    assert_eq!(msg.key(), Some(&b"ord-1"[..]));

    let consumer_span = telemetry::kafka::consumer_span(&msg, "inventory-service");
    let (seen_trace, seen_baggage) = consumer_span.in_scope(|| {
        (
            telemetry::current_trace_id(),
            telemetry::baggage::get("tracelab.scenario"),
        )
    });
    drop(consumer_span);
    assert_eq!(seen_trace.as_deref(), Some(trace_id.as_str()));
    assert_eq!(seen_baggage.as_deref(), Some("kafka.consumer_lag"));

    let spans = t.wait_for_spans(&trace_id, |s| s.len() >= 4, Duration::from_secs(10));
    let producer = span_named(&spans, "send orders");
    let consumer = span_named(&spans, "process orders");
    assert_eq!(producer.span_kind, SpanKind::Producer);
    assert_eq!(consumer.span_kind, SpanKind::Consumer);
    assert_eq!(consumer.parent_span_id, producer.span_context.span_id());
    assert!(
        consumer
            .links
            .iter()
            .any(|l| l.span_context.span_id() == producer.span_context.span_id()),
        "consumer links to the producer span"
    );
    for span in [producer, consumer] {
        assert_eq!(
            attribute(span, "messaging.system").as_deref(),
            Some("kafka")
        );
        assert_eq!(
            attribute(span, "messaging.destination.name").as_deref(),
            Some("orders")
        );
    }
    assert_eq!(
        attribute(producer, "messaging.operation.type").as_deref(),
        Some("send")
    );
    assert_eq!(
        attribute(consumer, "messaging.operation.type").as_deref(),
        Some("process")
    );
    assert_eq!(
        attribute(consumer, "messaging.consumer.group.name").as_deref(),
        Some("inventory-service")
    );
    assert_eq!(
        attribute(consumer, "messaging.destination.partition.id").as_deref(),
        Some("0")
    );
    assert_eq!(
        attribute(consumer, "messaging.kafka.offset").as_deref(),
        Some("0")
    );
    assert_eq!(
        attribute(producer, "messaging.kafka.offset").as_deref(),
        Some("0")
    );
    assert_eq!(
        attribute(consumer, "messaging.kafka.message.key").as_deref(),
        Some("ord-1")
    );
}
