//! A minimal protobuf walk over encoded `ExportTraceServiceRequest`s: the sink counts spans with
//! it without decoding (no allocation per span), and the generator finds, once, where in its
//! template each span's ids and timestamps lie so it can overwrite them in place per request.
//!
//! Only what OTLP traces need: varint, fixed64, fixed32 and length-delimited fields.

/// The encoding is not valid protobuf (truncated, bad varint, unknown wire type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed protobuf at byte {0}")]
pub struct Malformed(pub usize);

/// One field: its number, wire type and where its value lies in the buffer (absolute offsets;
/// for a varint, the varint's bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub number: u32,
    pub wire_type: u8,
    pub start: usize,
    pub end: usize,
}

pub const VARINT: u8 = 0;
pub const FIXED64: u8 = 1;
pub const LEN: u8 = 2;
pub const FIXED32: u8 = 5;

fn varint(buf: &[u8], pos: &mut usize, end: usize) -> Result<u64, Malformed> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        if *pos >= end {
            return Err(Malformed(*pos));
        }
        let b = buf[*pos];
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(Malformed(*pos))
}

/// The fields of the message in `buf[start..end]`, in order.
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
    failed: bool,
}

impl<'a> Fields<'a> {
    pub fn new(buf: &'a [u8], start: usize, end: usize) -> Self {
        Fields {
            buf,
            pos: start,
            end: end.min(buf.len()),
            failed: false,
        }
    }

    /// The fields of a whole buffer.
    pub fn of(buf: &'a [u8]) -> Self {
        Self::new(buf, 0, buf.len())
    }

    /// The fields of a length-delimited field's value (a sub-message).
    pub fn inside(buf: &'a [u8], f: &Field) -> Self {
        Self::new(buf, f.start, f.end)
    }

    fn next_field(&mut self) -> Result<Field, Malformed> {
        let at = self.pos;
        let key = varint(self.buf, &mut self.pos, self.end)?;
        let number = u32::try_from(key >> 3).map_err(|_| Malformed(at))?;
        let wire_type = (key & 7) as u8;
        let start = self.pos;
        let len = match wire_type {
            VARINT => {
                varint(self.buf, &mut self.pos, self.end)?;
                return Ok(Field {
                    number,
                    wire_type,
                    start,
                    end: self.pos,
                });
            }
            FIXED64 => 8,
            FIXED32 => 4,
            LEN => {
                let n = varint(self.buf, &mut self.pos, self.end)?;
                usize::try_from(n).map_err(|_| Malformed(at))?
            }
            _ => return Err(Malformed(at)),
        };
        let start = self.pos;
        let end = start.checked_add(len).ok_or(Malformed(at))?;
        if end > self.end {
            return Err(Malformed(at));
        }
        self.pos = end;
        Ok(Field {
            number,
            wire_type,
            start,
            end,
        })
    }
}

impl Iterator for Fields<'_> {
    type Item = Result<Field, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.end {
            return None;
        }
        let r = self.next_field();
        self.failed = r.is_err();
        Some(r)
    }
}

/// Calls `f` with each span of an `ExportTraceServiceRequest` (the span message's field, its value
/// being the encoded `Span`), in order: `resource_spans` (1) → `scope_spans` (2) → `spans` (2).
pub fn for_each_span(buf: &[u8], mut f: impl FnMut(&Field)) -> Result<(), Malformed> {
    for rs in Fields::of(buf) {
        let rs = rs?;
        if rs.number != 1 || rs.wire_type != LEN {
            continue;
        }
        for ss in Fields::inside(buf, &rs) {
            let ss = ss?;
            if ss.number != 2 || ss.wire_type != LEN {
                continue;
            }
            for span in Fields::inside(buf, &ss) {
                let span = span?;
                if span.number == 2 && span.wire_type == LEN {
                    f(&span);
                }
            }
        }
    }
    Ok(())
}

/// How many spans an encoded `ExportTraceServiceRequest` carries.
pub fn count_spans(buf: &[u8]) -> Result<u64, Malformed> {
    let mut n = 0;
    for_each_span(buf, |_| n += 1)?;
    Ok(n)
}

/// The first field numbered `number` of the message `msg` (a span, say), if any.
pub fn field(buf: &[u8], msg: &Field, number: u32) -> Result<Option<Field>, Malformed> {
    for f in Fields::inside(buf, msg) {
        let f = f?;
        if f.number == number {
            return Ok(Some(f));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn request(shape: &[&[usize]]) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: shape
                .iter()
                .map(|scopes| ResourceSpans {
                    scope_spans: scopes
                        .iter()
                        .map(|&n| ScopeSpans {
                            spans: (0..n)
                                .map(|i| Span {
                                    name: format!("s{i}"),
                                    trace_id: vec![i as u8; 16],
                                    ..Default::default()
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
        }
        .encode_to_vec()
    }

    #[test]
    fn counts_spans_across_resources_and_scopes() {
        assert_eq!(count_spans(&request(&[&[3, 0, 2], &[], &[5]])).unwrap(), 10);
        assert_eq!(count_spans(&[]).unwrap(), 0);
    }

    #[test]
    fn truncated_input_is_malformed_not_a_panic() {
        let buf = request(&[&[4]]);
        for cut in 1..buf.len() {
            // Every prefix either fails or counts no more spans than the whole.
            if let Ok(n) = count_spans(&buf[..cut]) {
                assert!(n <= 4);
            }
        }
        assert!(count_spans(&[0x0a, 0xff]).is_err());
    }

    #[test]
    fn finds_a_spans_trace_id() {
        let buf = request(&[&[2]]);
        let mut ids = Vec::new();
        for_each_span(&buf, |s| {
            let f = field(&buf, s, 1).unwrap().unwrap();
            ids.push(buf[f.start..f.end].to_vec());
        })
        .unwrap();
        assert_eq!(ids, vec![vec![0u8; 16], vec![1u8; 16]]);
    }
}
