//! Card data out of error text. serde's messages quote the offending value (``invalid type:
//! integer `4242424242424242`, expected a string``), so a card number or a token sent in the wrong
//! field would be echoed into the JSON error body, the log line and the span event of whichever
//! service rejected it. Every service passes rejection text through [`redact`] where the error is
//! made, and [`crate::error::ErrorBody::new`] applies it again to whatever it is given.

/// Masks runs of 8 or more digits (spaces and dashes allowed between them) as `[redacted]` and
/// `tok_…` words as `tok_[redacted]`; everything else stays, so the message still says what was wrong.
pub fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("tok_") {
            let end = rest
                .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '-'))
                .unwrap_or(rest.len());
            out.push_str("tok_[redacted]");
            rest = &rest[end..];
        } else if c.is_ascii_digit() {
            let end = rest
                .find(|ch: char| !(ch.is_ascii_digit() || ch == ' ' || ch == '-'))
                .unwrap_or(rest.len());
            let run = &rest[..end];
            if run.chars().filter(char::is_ascii_digit).count() >= 8 {
                out.push_str("[redacted]");
            } else {
                out.push_str(run);
            }
            rest = &rest[end..];
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn masks_card_numbers_and_tokens_only() {
        assert_eq!(
            redact(
                r#"invalid type: string "4242 4242-4242 4242", expected i64 at line 1 column 30"#
            ),
            r#"invalid type: string "[redacted]", expected i64 at line 1 column 30"#
        );
        assert_eq!(
            redact("invalid type: integer `4242424242424242`, expected a string"),
            "invalid type: integer `[redacted]`, expected a string"
        );
        assert_eq!(redact("bad tok_test_123 here"), "bad tok_[redacted] here");
        assert_eq!(redact("amount 14999 at line 1"), "amount 14999 at line 1");
    }
}
