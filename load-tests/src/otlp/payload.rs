//! The generator's requests: one `ExportTraceServiceRequest` template encoded once, and per
//! request a copy of its bytes with fresh ids and timestamps written at offsets found once in the
//! template — so every request carries new trace ids without being encoded again.
//!
//! Ids are fixed-size fields (16-byte trace id, 8-byte span and parent ids, fixed64 times), so
//! overwriting them keeps every length prefix valid.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use super::wire::{self, FIXED64, LEN};

/// What each request looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Shape {
    pub spans_per_request: usize,
    /// Consecutive spans share a trace; a trace may continue in the next request.
    pub spans_per_trace: usize,
    /// String attributes on each span.
    pub attributes: usize,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            spans_per_request: 100,
            spans_per_trace: 10,
            attributes: 4,
        }
    }
}

/// Where one span's patched fields lie in the template.
#[derive(Debug, Clone, Copy)]
struct Slots {
    trace_id: usize,
    span_id: usize,
    parent_span_id: usize,
    start_time: usize,
    end_time: usize,
}

/// The encoded template and its patch offsets.
#[derive(Debug, Clone)]
pub struct Template {
    shape: Shape,
    bytes: Vec<u8>,
    slots: Vec<Slots>,
    /// Distinguishes this run's trace ids from every other run's.
    salt: [u8; 8],
}

/// Attribute keys of an HTTP server span; beyond them, `attr.N`.
const KEYS: [(&str, &str); 6] = [
    ("http.request.method", "GET"),
    ("url.path", "/api/items"),
    ("http.response.status_code", "200"),
    ("server.address", "inventory-service"),
    ("http.route", "/api/items/{id}"),
    ("user_agent.original", "loadgen-otlp/1.0"),
];

fn kv(k: String, v: String) -> KeyValue {
    KeyValue {
        key: k,
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v)),
        }),
        ..Default::default()
    }
}

impl Template {
    /// Encodes the template; `salt` seeds this run's trace ids (give each run its own).
    pub fn new(shape: Shape, salt: u64) -> Self {
        assert!(shape.spans_per_request > 0 && shape.spans_per_trace > 0);
        let spans = (0..shape.spans_per_request)
            .map(|i| Span {
                // Non-zero placeholders of the final sizes: prost omits empty fields, and a
                // zero fixed64 would be omitted too.
                trace_id: vec![0xaa; 16],
                span_id: vec![0xbb; 8],
                parent_span_id: vec![0xcc; 8],
                name: format!("GET /api/items/{}", i % 10),
                kind: 2, // server
                start_time_unix_nano: u64::MAX,
                end_time_unix_nano: u64::MAX,
                attributes: (0..shape.attributes)
                    .map(|a| match KEYS.get(a) {
                        Some((k, v)) => kv(k.to_string(), v.to_string()),
                        None => kv(format!("attr.{a}"), format!("value-{a}")),
                    })
                    .collect(),
                status: Some(Status::default()),
                ..Default::default()
            })
            .collect();
        let bytes = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name".into(), "loadgen-otlp".into()),
                        kv("service.version".into(), "1.0.0".into()),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "loadgen".into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        let mut slots = Vec::with_capacity(shape.spans_per_request);
        wire::for_each_span(&bytes, |span| {
            let at = |number, wire_type, len| {
                let f = wire::field(&bytes, span, number)
                    .expect("the template is valid protobuf")
                    .expect("the template sets every patched field");
                assert!(f.wire_type == wire_type && f.end - f.start == len);
                f.start
            };
            slots.push(Slots {
                trace_id: at(1, LEN, 16),
                span_id: at(2, LEN, 8),
                parent_span_id: at(4, LEN, 8),
                start_time: at(7, FIXED64, 8),
                end_time: at(8, FIXED64, 8),
            });
        })
        .expect("the template is valid protobuf");
        assert_eq!(slots.len(), shape.spans_per_request);
        Template {
            shape,
            bytes,
            slots,
            salt: salt.to_be_bytes(),
        }
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The encoded size of every request.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Request number `n` of the run: the template with span `i` as the run's span
    /// `n * spans_per_request + i`, in trace `that / spans_per_trace`, ending at `now_nanos`.
    /// Its trace's first span has a parent outside the run (a remote caller); the others are
    /// children of that first span.
    pub fn request(&self, n: u64, now_nanos: u64) -> Vec<u8> {
        let mut out = self.bytes.clone();
        let spr = self.shape.spans_per_request as u64;
        let spt = self.shape.spans_per_trace as u64;
        for (i, s) in self.slots.iter().enumerate() {
            let g = n * spr + i as u64;
            let trace = g / spt;
            let pos = g % spt;
            out[s.trace_id..s.trace_id + 8].copy_from_slice(&self.salt);
            out[s.trace_id + 8..s.trace_id + 16].copy_from_slice(&(trace + 1).to_be_bytes());
            // Span ids below 2^63, the remote callers' above: never equal, never zero.
            let span_id = (g + 1) & (u64::MAX >> 1);
            let parent = if pos == 0 {
                (trace + 1) | (1 << 63)
            } else {
                (trace * spt + 1) & (u64::MAX >> 1)
            };
            out[s.span_id..s.span_id + 8].copy_from_slice(&span_id.to_be_bytes());
            out[s.parent_span_id..s.parent_span_id + 8].copy_from_slice(&parent.to_be_bytes());
            // The first span of a trace covers its children: 5 ms long, children start later.
            let start = now_nanos.saturating_sub(5_000_000) + pos * 1_000;
            let end = if pos == 0 {
                now_nanos
            } else {
                now_nanos.saturating_sub(1_000_000)
            };
            out[s.start_time..s.start_time + 8].copy_from_slice(&start.to_le_bytes());
            out[s.end_time..s.end_time + 8].copy_from_slice(&end.to_le_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn patched_requests_decode_with_fresh_ids() {
        let shape = Shape {
            spans_per_request: 7,
            spans_per_trace: 3,
            attributes: 8,
        };
        let t = Template::new(shape, 42);
        let now = 1_800_000_000_000_000_000;
        let mut traces = HashSet::new();
        let mut spans = HashSet::new();
        for n in 0..5 {
            let bytes = t.request(n, now);
            assert_eq!(bytes.len(), t.len());
            let req = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
            let decoded = &req.resource_spans[0].scope_spans[0].spans;
            assert_eq!(decoded.len(), 7);
            for s in decoded {
                assert_eq!(&s.trace_id[..8], &42u64.to_be_bytes());
                assert!(spans.insert(s.span_id.clone()), "span ids repeat");
                traces.insert(s.trace_id.clone());
                assert_eq!(s.attributes.len(), 8);
                assert!(s.start_time_unix_nano < s.end_time_unix_nano);
                assert!(s.end_time_unix_nano <= now);
                assert_ne!(s.parent_span_id, s.span_id);
            }
        }
        // 35 spans in traces of 3: 12 traces, the last one short.
        assert_eq!(traces.len(), 12);
    }

    #[test]
    fn children_point_at_their_traces_first_span() {
        let t = Template::new(
            Shape {
                spans_per_request: 4,
                spans_per_trace: 4,
                attributes: 0,
            },
            1,
        );
        let req = ExportTraceServiceRequest::decode(t.request(3, 10_000_000).as_slice()).unwrap();
        let spans = &req.resource_spans[0].scope_spans[0].spans;
        let root = &spans[0];
        assert!(spans[1..].iter().all(|s| s.parent_span_id == root.span_id));
        assert!(spans.iter().all(|s| s.trace_id == root.trace_id));
        assert_ne!(root.parent_span_id, root.span_id);
    }
}
