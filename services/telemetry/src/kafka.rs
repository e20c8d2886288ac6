//! Kafka trace propagation: W3C context in rdkafka message headers, and PRODUCER /
//! CONSUMER spans with the messaging semantic conventions.
//!
//! No maintained crate carries OpenTelemetry 0.33 context over rdkafka headers, so the
//! two carriers below are hand-written (a dozen lines each).

use opentelemetry::{
    global,
    propagation::{Extractor, Injector},
    trace::TraceContextExt,
};
use rdkafka::{
    Message,
    message::{Header, Headers, OwnedHeaders},
};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Collects injected entries; rdkafka's `OwnedHeaders::insert` consumes the headers,
/// so they are appended after injection.
#[derive(Debug, Default)]
pub struct HeaderInjector(pub Vec<(String, String)>);

impl Injector for HeaderInjector {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

/// Reads propagation entries from any rdkafka headers (owned or borrowed).
pub struct HeaderExtractor<'a, H: Headers>(pub &'a H);

impl<H: Headers> Extractor for HeaderExtractor<'_, H> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case(key))
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|h| h.key).collect()
    }
}

/// A PRODUCER span `send {topic}`. Create it, then [`inject`] its context into the
/// message headers and send the message inside it; record the delivery with
/// [`record_delivery`].
pub fn producer_span(topic: &str) -> tracing::Span {
    tracing::info_span!(
        "send",
        otel.name = format!("send {topic}"),
        otel.kind = "producer",
        otel.status_code = Empty,
        messaging.system = "kafka",
        messaging.operation.type = "send",
        messaging.operation.name = "send",
        messaging.destination.name = topic,
        messaging.destination.partition.id = Empty,
        messaging.kafka.offset = Empty,
        messaging.kafka.message.key = Empty,
        error.type = Empty,
    )
}

/// Appends `span`'s context (`traceparent`, `tracestate`, `baggage`) to `headers`.
pub fn inject(span: &tracing::Span, headers: OwnedHeaders) -> OwnedHeaders {
    let cx = span.context();
    let mut injector = HeaderInjector::default();
    global::get_text_map_propagator(|p| p.inject_context(&cx, &mut injector));
    injector.0.iter().fold(headers, |headers, (k, v)| {
        headers.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        })
    })
}

/// Records where the broker put the message on a producer span.
pub fn record_delivery(span: &tracing::Span, partition: i32, offset: i64) {
    span.record("messaging.destination.partition.id", partition.to_string());
    span.record("messaging.kafka.offset", offset);
}

/// Marks a producer or consumer span failed.
pub fn record_error(span: &tracing::Span, error: &dyn std::error::Error) {
    span.record("otel.status_code", "ERROR");
    span.record("error.type", error.to_string());
}

/// A CONSUMER span `process {topic}` for a received message: a child of the producer's
/// context carried in the headers (one trace from request to consumer), with a span link
/// to it as well, as the messaging conventions recommend for batch-capable consumers.
/// Baggage from the headers is available inside it.
pub fn consumer_span<M: Message>(msg: &M, consumer_group: &str) -> tracing::Span {
    let topic = msg.topic();
    let span = tracing::info_span!(
        "process",
        otel.name = format!("process {topic}"),
        otel.kind = "consumer",
        otel.status_code = Empty,
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = topic,
        messaging.consumer.group.name = consumer_group,
        messaging.destination.partition.id = msg.partition().to_string(),
        messaging.kafka.offset = msg.offset(),
        messaging.kafka.message.key = Empty,
        error.type = Empty,
    );
    if let Some(key) = msg.key().and_then(|k| std::str::from_utf8(k).ok()) {
        span.record("messaging.kafka.message.key", key);
    }
    if let Some(headers) = msg.headers() {
        let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
        let producer = parent.span().span_context().clone();
        let _ = span.set_parent(parent);
        span.add_link(producer);
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extractor_reads_injected_entries_from_owned_headers() {
        let mut injector = HeaderInjector::default();
        injector.set(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into(),
        );
        let headers = injector.0.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        });
        let extractor = HeaderExtractor(&headers);
        assert_eq!(
            extractor.get("TraceParent"),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        assert_eq!(extractor.keys(), vec!["traceparent"]);
        assert_eq!(extractor.get("baggage"), None);
    }
}
