//! OTLP at the wire level: payloads that travel through the pipeline still encoded.
//!
//! Decoding an OTLP/protobuf request into `opentelemetry-proto`'s owned structs costs a dozen
//! allocations per span (ids, name, every attribute key and value), and dropping them as many
//! frees; a collector that only forwards the data (receive → batch → OTLP export, or receive →
//! `nop`) pays that twice, since the exporter encodes everything again. So the `otlp` receiver
//! [`scan_traces`] a protobuf trace request instead: one pass over the bytes, no allocation,
//! checking everything prost's decoder would check (wire types of known fields, lengths, UTF-8 of
//! every string, the nesting depth) plus the receiver's own rule (16-byte trace ids, 8-byte span
//! ids), and counting the spans. An accepted request travels on as [`Encoded`]: the bytes
//! themselves, shared (`Bytes`), and their item count. Components that need spans decode it
//! ([`Encoded::decode`], the default of `Consumer::consume_encoded`); the batch processor, the
//! OTLP exporters, `nop`, fan-out and memory_limiter pass it on as it is.
//!
//! The scanner is conservative by design: whatever it does not accept — a malformed request, a
//! span with a bad id, protobuf groups, deep nesting — goes the old way, decoded by prost, which
//! stays the authority on errors and on partial success. Soundness is the one property that
//! matters (the scanner accepts only what prost decodes, and counts the same spans); the tests
//! check it on mutated payloads.
//!
//! Concatenated encodings of `Export*ServiceRequest` are themselves an encoding of the request
//! holding all their `resource_*` entries (protobuf concatenates repeated fields), which is how
//! [`Encoded`] batches without re-encoding.

use std::marker::PhantomData;

use bytes::Bytes;
use prost::Message;
use prost::encoding::{WireType, decode_key, decode_varint};

use super::signal::Signal;

/// Encoded `Export*ServiceRequest`s of signal `T`, and how many items (spans) they hold.
pub struct Encoded<T> {
    /// Each chunk is one complete encoded request; their concatenation is one too.
    pub chunks: Vec<Bytes>,
    pub items: usize,
    _signal: PhantomData<fn() -> T>,
}

impl<T> Clone for Encoded<T> {
    fn clone(&self) -> Self {
        Self {
            chunks: self.chunks.clone(),
            items: self.items,
            _signal: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Encoded<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoded")
            .field("chunks", &self.chunks.len())
            .field("bytes", &self.byte_len())
            .field("items", &self.items)
            .finish()
    }
}

impl<T> Encoded<T> {
    /// One request of `items` items. The caller vouches for the count (a scan gave it).
    pub fn one(bytes: Bytes, items: usize) -> Self {
        Self {
            chunks: vec![bytes],
            items,
            _signal: PhantomData,
        }
    }

    pub fn empty() -> Self {
        Self {
            chunks: Vec::new(),
            items: 0,
            _signal: PhantomData,
        }
    }

    /// Appends another payload's chunks (batching by concatenation).
    pub fn append(&mut self, other: Encoded<T>) {
        self.chunks.extend(other.chunks);
        self.items += other.items;
    }

    pub fn byte_len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    /// The whole payload as one buffer (a copy unless it is a single chunk).
    #[cfg(test)]
    fn to_bytes(&self) -> Bytes {
        match self.chunks.as_slice() {
            [one] => one.clone(),
            many => {
                let mut v = Vec::with_capacity(self.byte_len());
                for c in many {
                    v.extend_from_slice(c);
                }
                Bytes::from(v)
            }
        }
    }
}

impl<T: Signal> Encoded<T> {
    /// Decodes into owned items, dropping entries that carry no items (as the receiver does
    /// for decoded requests).
    pub fn decode(&self) -> Result<Vec<T>, prost::DecodeError> {
        let mut out = Vec::new();
        for c in &self.chunks {
            let req = T::Request::decode(&c[..])?;
            out.extend(
                T::from_request(req)
                    .into_iter()
                    .filter(|r| r.item_count() > 0),
            );
        }
        Ok(out)
    }

    /// Encodes owned items (so a batch mixing both kinds can go out encoded).
    pub fn encode(items: Vec<T>) -> Self {
        let n = super::signal::count(&items);
        let req = T::into_request(items);
        Self::one(Bytes::from(req.encode_to_vec()), n)
    }
}

/// What a scan found in an accepted trace request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceScan {
    pub spans: usize,
}

/// The scan did not accept the payload; decode it with prost to learn why (or to find that it
/// is fine after all, e.g. a span with a bad id that partial success rejects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAccepted;

type R<T = ()> = Result<T, NotAccepted>;

/// Deeper than any real trace needs (AnyValue arrays/maps nest); prost's own limit is 100.
const MAX_DEPTH: u32 = 32;

enum Field<'a> {
    Varint,
    Fixed32,
    Fixed64,
    Len(&'a [u8]),
}

/// Walks the fields of one message, handing each (tag, value) to `f`. Groups are not
/// accepted (OTLP has none; prost would skip them, the scanner leaves that case to prost).
#[inline]
fn fields<'a>(mut buf: &'a [u8], mut f: impl FnMut(u32, Field<'a>) -> R) -> R {
    while !buf.is_empty() {
        let (tag, wt) = decode_key(&mut buf).map_err(|_| NotAccepted)?;
        let v = match wt {
            WireType::Varint => {
                decode_varint(&mut buf).map_err(|_| NotAccepted)?;
                Field::Varint
            }
            WireType::ThirtyTwoBit => {
                if buf.len() < 4 {
                    return Err(NotAccepted);
                }
                buf = &buf[4..];
                Field::Fixed32
            }
            WireType::SixtyFourBit => {
                if buf.len() < 8 {
                    return Err(NotAccepted);
                }
                buf = &buf[8..];
                Field::Fixed64
            }
            WireType::LengthDelimited => {
                let len = decode_varint(&mut buf).map_err(|_| NotAccepted)?;
                if len > buf.len() as u64 {
                    return Err(NotAccepted);
                }
                let (body, rest) = buf.split_at(len as usize);
                buf = rest;
                Field::Len(body)
            }
            WireType::StartGroup | WireType::EndGroup => return Err(NotAccepted),
        };
        f(tag, v)?;
    }
    Ok(())
}

#[inline]
fn varint(v: Field) -> R {
    match v {
        Field::Varint => Ok(()),
        _ => Err(NotAccepted),
    }
}

#[inline]
fn fixed32(v: Field) -> R {
    match v {
        Field::Fixed32 => Ok(()),
        _ => Err(NotAccepted),
    }
}

#[inline]
fn fixed64(v: Field) -> R {
    match v {
        Field::Fixed64 => Ok(()),
        _ => Err(NotAccepted),
    }
}

#[inline]
fn bytes(v: Field<'_>) -> R<&[u8]> {
    match v {
        Field::Len(b) => Ok(b),
        _ => Err(NotAccepted),
    }
}

/// UTF-8 check with an ASCII fast path: OTLP strings are short (attribute keys, names), where
/// an OR over the bytes (vectorised) beats `from_utf8`'s per-byte loop.
#[inline]
fn string(v: Field) -> R {
    let b = bytes(v)?;
    if b.iter().fold(0u8, |acc, &c| acc | c) < 0x80 {
        return Ok(());
    }
    std::str::from_utf8(b).map(|_| ()).map_err(|_| NotAccepted)
}

/// Checks a nested message of the given kind, one level deeper.
#[inline]
fn message(v: Field, depth: u32, check: fn(&[u8], u32) -> R) -> R {
    if depth >= MAX_DEPTH {
        return Err(NotAccepted);
    }
    check(bytes(v)?, depth + 1)
}

fn key_value(buf: &[u8], depth: u32) -> R {
    fields(buf, |tag, v| match tag {
        1 => string(v),
        2 => message(v, depth, any_value),
        3 => varint(v),
        _ => Ok(()),
    })
}

fn any_value(buf: &[u8], depth: u32) -> R {
    fields(buf, |tag, v| match tag {
        1 => string(v),
        2 | 3 | 8 => varint(v),
        4 => fixed64(v),
        5 => message(v, depth, array_value),
        6 => message(v, depth, key_value_list),
        7 => bytes(v).map(|_| ()),
        _ => Ok(()),
    })
}

fn array_value(buf: &[u8], depth: u32) -> R {
    fields(buf, |tag, v| match tag {
        1 => message(v, depth, any_value),
        _ => Ok(()),
    })
}

fn key_value_list(buf: &[u8], depth: u32) -> R {
    fields(buf, |tag, v| match tag {
        1 => message(v, depth, key_value),
        _ => Ok(()),
    })
}

fn entity_ref(buf: &[u8], _depth: u32) -> R {
    fields(buf, |tag, v| match tag {
        1..=4 => string(v),
        _ => Ok(()),
    })
}

fn resource(buf: &[u8], depth: u32) -> R {
    fields(buf, |tag, v| match tag {
        1 => message(v, depth, key_value),
        2 => varint(v),
        3 => message(v, depth, entity_ref),
        _ => Ok(()),
    })
}

fn scope(buf: &[u8], depth: u32) -> R {
    fields(buf, |tag, v| match tag {
        1 | 2 => string(v),
        3 => message(v, depth, key_value),
        4 => varint(v),
        _ => Ok(()),
    })
}

fn event(buf: &[u8], depth: u32) -> R {
    fields(buf, |tag, v| match tag {
        1 => fixed64(v),
        2 => string(v),
        3 => message(v, depth, key_value),
        4 => varint(v),
        _ => Ok(()),
    })
}

fn link(buf: &[u8], depth: u32) -> R {
    fields(buf, |tag, v| match tag {
        1 | 2 => bytes(v).map(|_| ()),
        3 => string(v),
        4 => message(v, depth, key_value),
        5 => varint(v),
        6 => fixed32(v),
        _ => Ok(()),
    })
}

fn status(buf: &[u8], _depth: u32) -> R {
    fields(buf, |tag, v| match tag {
        2 => string(v),
        3 => varint(v),
        _ => Ok(()),
    })
}

/// A span, which must also carry a 16-byte trace id and an 8-byte span id (the last
/// occurrence counts, as in prost).
fn span(buf: &[u8], depth: u32) -> R {
    let (mut trace_id, mut span_id) = (0usize, 0usize);
    fields(buf, |tag, v| match tag {
        1 => bytes(v).map(|b| trace_id = b.len()),
        2 => bytes(v).map(|b| span_id = b.len()),
        4 => bytes(v).map(|_| ()),
        3 | 5 => string(v),
        6 | 10 | 12 | 14 => varint(v),
        7 | 8 => fixed64(v),
        9 => message(v, depth, key_value),
        11 => message(v, depth, event),
        13 => message(v, depth, link),
        15 => message(v, depth, status),
        16 => fixed32(v),
        _ => Ok(()),
    })?;
    if trace_id == 16 && span_id == 8 {
        Ok(())
    } else {
        Err(NotAccepted)
    }
}

fn scope_spans(buf: &[u8], depth: u32, spans: &mut usize) -> R {
    fields(buf, |tag, v| match tag {
        1 => message(v, depth, scope),
        2 => {
            *spans += 1;
            message(v, depth, span)
        }
        3 => string(v),
        _ => Ok(()),
    })
}

fn resource_spans(buf: &[u8], depth: u32, spans: &mut usize) -> R {
    fields(buf, |tag, v| match tag {
        1 => message(v, depth, resource),
        2 => scope_spans(bytes(v)?, depth + 1, spans),
        3 => string(v),
        _ => Ok(()),
    })
}

/// Scans an encoded `ExportTraceServiceRequest` (see the module docs). `Ok` means prost decodes
/// it and every span has valid ids; the count is the number of spans.
pub fn scan_traces(buf: &[u8]) -> Result<TraceScan, NotAccepted> {
    let mut spans = 0usize;
    fields(buf, |tag, v| match tag {
        1 => resource_spans(bytes(v)?, 1, &mut spans),
        _ => Ok(()),
    })?;
    Ok(TraceScan { spans })
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

    use super::*;

    fn kv(k: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn span(i: u8) -> Span {
        Span {
            trace_id: vec![i; 16],
            span_id: vec![i; 8],
            parent_span_id: vec![1; 8],
            trace_state: "ot=th:8".into(),
            name: format!("GET /items/{i}"),
            kind: 2,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_002_000_000,
            attributes: vec![
                kv(
                    "http.request.method",
                    any_value::Value::StringValue("GET".into()),
                ),
                kv("http.response.status_code", any_value::Value::IntValue(200)),
                kv("ratio", any_value::Value::DoubleValue(0.5)),
                kv("ok", any_value::Value::BoolValue(true)),
                kv("raw", any_value::Value::BytesValue(vec![0, 1, 2])),
                kv(
                    "list",
                    any_value::Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(any_value::Value::KvlistValue(KeyValueList {
                                values: vec![kv("x", any_value::Value::StringValue("y".into()))],
                            })),
                        }],
                    }),
                ),
            ],
            events: vec![Event {
                time_unix_nano: 5,
                name: "exception".into(),
                attributes: vec![kv("k", any_value::Value::StringValue("v".into()))],
                dropped_attributes_count: 1,
            }],
            links: vec![Link {
                trace_id: vec![9; 16],
                span_id: vec![9; 8],
                trace_state: String::new(),
                attributes: vec![],
                dropped_attributes_count: 0,
                flags: 0x101,
            }],
            status: Some(Status {
                message: "boom".into(),
                code: 2,
            }),
            flags: 0x301,
            ..Default::default()
        }
    }

    fn request(services: usize, spans: usize) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: (0..services)
                .map(|s| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![kv(
                            "service.name",
                            any_value::Value::StringValue(format!("svc-{s}")),
                        )],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "tracing-opentelemetry".into(),
                            version: "0.32".into(),
                            ..Default::default()
                        }),
                        spans: (0..spans).map(|i| span(i as u8 + 2)).collect(),
                        schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                    }],
                    schema_url: String::new(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_valid_request_is_accepted_with_its_span_count() {
        let bytes = request(3, 7).encode_to_vec();
        assert_eq!(scan_traces(&bytes), Ok(TraceScan { spans: 21 }));
        assert_eq!(scan_traces(&[]), Ok(TraceScan { spans: 0 }));
    }

    #[test]
    fn bad_ids_and_bad_utf8_are_left_to_prost() {
        let mut r = request(1, 2);
        r.resource_spans[0].scope_spans[0].spans[1].trace_id = vec![1; 8];
        let bytes = r.encode_to_vec();
        assert_eq!(scan_traces(&bytes), Err(NotAccepted));
        assert!(ExportTraceServiceRequest::decode(&bytes[..]).is_ok());

        let mut r = request(1, 1);
        r.resource_spans[0].scope_spans[0].spans[0].name = "\u{e9}t\u{e9}".into();
        let mut bytes = r.encode_to_vec();
        let at = bytes.windows(2).position(|w| w == [0xc3, 0xa9]).unwrap();
        bytes[at + 1] = 0x28; // no longer UTF-8
        assert_eq!(scan_traces(&bytes), Err(NotAccepted));
        assert!(ExportTraceServiceRequest::decode(&bytes[..]).is_err());
    }

    /// Soundness: over every single-byte change and every truncation of a rich request,
    /// whatever the scanner accepts, prost decodes, with the same span count and valid ids.
    #[test]
    fn whatever_the_scanner_accepts_prost_decodes_with_the_same_spans() {
        let base = request(2, 3).encode_to_vec();
        let mut accepted = 0;
        let mut check = |bytes: &[u8]| {
            if let Ok(scan) = scan_traces(bytes) {
                accepted += 1;
                let req = ExportTraceServiceRequest::decode(bytes)
                    .unwrap_or_else(|e| panic!("scanner accepted what prost refuses: {e}"));
                let spans: Vec<&Span> = req
                    .resource_spans
                    .iter()
                    .flat_map(|r| &r.scope_spans)
                    .flat_map(|s| &s.spans)
                    .collect();
                assert_eq!(spans.len(), scan.spans);
                assert!(
                    spans
                        .iter()
                        .all(|s| s.trace_id.len() == 16 && s.span_id.len() == 8)
                );
            }
        };
        for cut in 0..base.len() {
            check(&base[..cut]);
        }
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for at in 0..base.len() {
            for _ in 0..6 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let mut m = base.clone();
                m[at] = rng as u8;
                check(&m);
            }
            for special in [0x00, 0x80, 0xff, 0x0a, 0x12, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f] {
                let mut m = base.clone();
                m[at] = special;
                check(&m);
            }
        }
        assert!(
            accepted > base.len(),
            "the mutations should keep many payloads valid"
        );
    }

    #[test]
    fn concatenated_chunks_decode_as_one_request() {
        let a = request(1, 2);
        let b = request(2, 1);
        let mut e = Encoded::<ResourceSpans>::one(Bytes::from(a.encode_to_vec()), 2);
        e.append(Encoded::one(Bytes::from(b.encode_to_vec()), 2));
        let whole = ExportTraceServiceRequest::decode(&e.to_bytes()[..]).unwrap();
        assert_eq!(whole.resource_spans.len(), 3);
        assert_eq!(e.decode().unwrap().len(), 3);
        assert_eq!(scan_traces(&e.to_bytes()), Ok(TraceScan { spans: 4 }));
    }
}
