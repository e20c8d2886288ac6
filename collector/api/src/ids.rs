//! Trace and span id parsing with Jaeger's leniency: ids are hex, case-insensitive, and may be
//! shorter than their full width (Jaeger left-pads them with zeros, e.g. 64-bit Zipkin-era ids).

use std::fmt;

/// Why a string is not a trace or span id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceIdError {
    Empty,
    TooLong { max_hex_digits: usize, got: usize },
    NotHex(char),
    AllZero,
}

impl fmt::Display for TraceIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("id is empty"),
            Self::TooLong {
                max_hex_digits,
                got,
            } => {
                write!(
                    f,
                    "id has {got} hex digits, at most {max_hex_digits} allowed"
                )
            }
            Self::NotHex(c) => write!(f, "id contains {c:?}, only hex digits are allowed"),
            Self::AllZero => f.write_str("id is all zeros, which OpenTelemetry treats as invalid"),
        }
    }
}

impl std::error::Error for TraceIdError {}

fn parse_hex<const N: usize>(s: &str) -> Result<[u8; N], TraceIdError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(TraceIdError::Empty);
    }
    if s.len() > N * 2 {
        return Err(TraceIdError::TooLong {
            max_hex_digits: N * 2,
            got: s.len(),
        });
    }
    let mut out = [0u8; N];
    // Walk from the least significant digit so short ids are left-padded with zeros.
    for (i, c) in s.chars().rev().enumerate() {
        let v = c.to_digit(16).ok_or(TraceIdError::NotHex(c))? as u8;
        let byte = N - 1 - i / 2;
        out[byte] |= if i % 2 == 0 { v } else { v << 4 };
    }
    if out.iter().all(|b| *b == 0) {
        return Err(TraceIdError::AllZero);
    }
    Ok(out)
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

/// Parses a trace id (1–32 hex digits, any case) into its 16 bytes.
pub fn parse_trace_id(s: &str) -> Result<[u8; 16], TraceIdError> {
    parse_hex::<16>(s)
}

/// The canonical form of a trace id: 32 lowercase hex digits (what the collector stores and returns).
pub fn normalize_trace_id(s: &str) -> Result<String, TraceIdError> {
    parse_trace_id(s).map(|b| to_hex(&b))
}

/// The canonical form of a span id: 16 lowercase hex digits.
pub fn normalize_span_id(s: &str) -> Result<String, TraceIdError> {
    parse_hex::<8>(s).map(|b| to_hex(&b))
}

/// Lowercase hex of raw id bytes (OTLP carries ids as bytes).
pub fn hex_id(bytes: &[u8]) -> String {
    to_hex(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_normalised_and_left_padded() {
        assert_eq!(
            normalize_trace_id("4BF92F3577B34DA6A3CE929D0E0E4736").unwrap(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(
            normalize_trace_id("abc").unwrap(),
            "00000000000000000000000000000abc"
        );
        assert_eq!(normalize_span_id("1").unwrap(), "0000000000000001");
    }

    #[test]
    fn bad_trace_ids_are_rejected_with_a_reason() {
        assert_eq!(parse_trace_id(""), Err(TraceIdError::Empty));
        assert_eq!(parse_trace_id("xyz"), Err(TraceIdError::NotHex('z')));
        assert_eq!(parse_trace_id("000"), Err(TraceIdError::AllZero));
        assert!(matches!(
            parse_trace_id(&"a".repeat(33)),
            Err(TraceIdError::TooLong { .. })
        ));
    }
}
