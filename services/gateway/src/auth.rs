//! Caller authentication: the `authenticate` span resolves the caller from a bearer token. No
//! Authorization header means the anonymous demo user (so the seed's plain POST works); a malformed
//! header or an unknown token is a 401.

use std::collections::HashMap;

use axum::http::{HeaderMap, header};
use opentelemetry::trace::Status;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::error::ApiError;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub anonymous: bool,
}

pub struct Authenticator {
    tokens: HashMap<String, String>,
    anonymous_user: String,
}

impl Authenticator {
    pub fn new(tokens: HashMap<String, String>, anonymous_user: String) -> Self {
        Self {
            tokens,
            anonymous_user,
        }
    }

    /// Runs inside its own INTERNAL span `authenticate` (seed 003's auth step). The token itself is
    /// never recorded.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let span = tracing::info_span!(
            "authenticate",
            auth.method = tracing::field::Empty,
            user.id = tracing::field::Empty,
        );
        let result = span.in_scope(|| self.resolve(headers));
        match &result {
            Ok(caller) => {
                span.record(
                    "auth.method",
                    if caller.anonymous {
                        "anonymous"
                    } else {
                        "bearer"
                    },
                );
                span.record("user.id", caller.user_id.as_str());
            }
            Err(err) => {
                span.record("auth.method", "bearer");
                span.set_status(Status::error(err.to_string()));
            }
        }
        result
    }

    fn resolve(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(Caller {
                user_id: self.anonymous_user.clone(),
                anonymous: true,
            });
        };
        let token = service_kit::admin::bearer(value)
            .filter(|t| t.chars().all(|c| c.is_ascii_graphic()))
            .ok_or(ApiError::Unauthorized(
                "malformed Authorization header: expected `Bearer <token>`",
            ))?;
        self.tokens
            .get(token)
            .map(|user| Caller {
                user_id: user.clone(),
                anonymous: false,
            })
            .ok_or(ApiError::Unauthorized("unknown or expired token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth() -> Authenticator {
        Authenticator::new(
            HashMap::from([("good".to_owned(), "alice".to_owned())]),
            "demo-user".to_owned(),
        )
    }

    fn with_auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn resolves_tokens_and_anonymous() {
        let a = auth();
        assert_eq!(
            a.authenticate(&HeaderMap::new()).unwrap(),
            Caller {
                user_id: "demo-user".into(),
                anonymous: true
            }
        );
        assert_eq!(
            a.authenticate(&with_auth("Bearer good")).unwrap().user_id,
            "alice"
        );
        assert_eq!(
            a.authenticate(&with_auth("bearer   good "))
                .unwrap()
                .user_id,
            "alice"
        );
    }

    #[test]
    fn rejects_malformed_and_unknown() {
        let a = auth();
        for bad in [
            "Bearer nope",
            "Basic Zm9vOmJhcg==",
            "Bearer",
            "good",
            "Bearer a b",
        ] {
            assert!(
                matches!(
                    a.authenticate(&with_auth(bad)),
                    Err(ApiError::Unauthorized(_))
                ),
                "{bad}"
            );
        }
    }
}
