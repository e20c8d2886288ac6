//! Card tokens and the only card detail payment-service ever shows: the last four digits.
//!
//! A token is a provider secret: it never reaches a log, a span attribute, a metric label or the
//! database. [`CardToken`] has no `Display` and a redacting `Debug`, and [`CardToken::last4`] derives the
//! displayable digits deterministically without exposing any part of the token itself.

/// A payment-provider token (`tok_test_123`, `tok_declined`), held only long enough to charge it.
#[derive(Clone, PartialEq, Eq)]
pub struct CardToken(String);

impl std::fmt::Debug for CardToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CardToken(card ending {})", self.last4())
    }
}

/// Stripe's documented test tokens and the test cards they stand for.
const KNOWN_TEST_TOKENS: &[(&str, &str)] = &[
    ("tok_visa", "4242"),
    ("tok_mastercard", "4444"),
    ("tok_amex", "8431"),
    ("tok_declined", "0002"),
    ("tok_chargeDeclined", "0002"),
];

impl CardToken {
    /// Validates the token's shape (a provider token, not a card number) and wraps it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("payment token is required".into());
        }
        if raw.len() > 128 {
            return Err("payment token is too long".into());
        }
        if !raw.starts_with("tok_") {
            // Deliberately vague: echoing any part of what was sent could leak a card number.
            return Err(
                "payment token must be a provider token (tok_...), never a card number".into(),
            );
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err("payment token has invalid characters".into());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The card's last four digits: Stripe's test cards for their known tokens, `4242` for the demo's
    /// `tok_test_*` tokens, otherwise four digits of a stable hash (FNV-1a) of the token.
    pub fn last4(&self) -> String {
        if let Some((_, digits)) = KNOWN_TEST_TOKENS.iter().find(|(t, _)| *t == self.0) {
            return (*digits).to_owned();
        }
        if self.0.starts_with("tok_test") {
            return "4242".to_owned();
        }
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.0.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{:04}", hash % 10_000)
    }

    /// The token itself, for the one place that may send it: the request body to the provider.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last4_is_deterministic_and_never_the_token() {
        let t = CardToken::parse("tok_live_9f8e7d6c").unwrap();
        assert_eq!(t.last4(), t.last4());
        assert_eq!(t.last4().len(), 4);
        assert!(t.last4().bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(CardToken::parse("tok_test_123").unwrap().last4(), "4242");
        assert_eq!(CardToken::parse("tok_visa").unwrap().last4(), "4242");
    }

    #[test]
    fn debug_redacts_the_token() {
        let t = CardToken::parse("tok_test_123").unwrap();
        let shown = format!("{t:?}");
        assert!(!shown.contains("tok_test_123"), "{shown}");
        assert!(shown.contains("card ending 4242"));
    }

    #[test]
    fn rejects_card_numbers_and_junk() {
        assert!(CardToken::parse("4242424242424242").is_err());
        assert!(CardToken::parse("").is_err());
        assert!(CardToken::parse("tok_<script>").is_err());
        let err = CardToken::parse("4242424242424242").unwrap_err();
        assert!(!err.contains("4242"));
    }
}
