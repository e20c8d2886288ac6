//! The admin token: the `/admin/...` routes of every service (the gateway's scenario flags and the
//! run-time fixes of payment, order and inventory) switch faults on and off, so a deployment can
//! put them behind one shared bearer token, `ADMIN_TOKEN`. When it is set, an admin request needs
//! `Authorization: Bearer <ADMIN_TOKEN>` and is otherwise answered 401 with the shared JSON error
//! body naming what was wrong; when it is unset the routes are open (a workshop on loopback) and
//! [`AdminArgs::protect`] logs a warning saying so.
//!
//! ```text
//! #[command(flatten)]
//! pub admin: service_kit::AdminArgs,
//! ...
//! Router::new().merge(config.admin.protect(admin::router()))
//! ```
//!
//! The token is compared in constant time (for tokens of the same length), so the time of a refusal
//! does not tell a caller how many leading characters it guessed right.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use contracts::error::codes;

/// The admin routes' token, flattened into each service's `Config` that has admin routes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AdminArgs {
    /// Bearer token the /admin routes require (`Authorization: Bearer TOKEN`). Unset or empty:
    /// the admin routes are open, and a warning says so at start.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

impl AdminArgs {
    /// A token (for tests).
    pub fn with_token(token: &str) -> Self {
        Self {
            admin_token: Some(token.to_owned()),
        }
    }

    /// The token, when one is set and not empty (an empty `ADMIN_TOKEN=` in a compose file means
    /// "none", not "the empty token").
    pub fn token(&self) -> Option<&str> {
        self.admin_token.as_deref().filter(|t| !t.trim().is_empty())
    }

    /// `router` (a service's `/admin` routes) behind the token check when a token is set; as it
    /// is, with a warning logged, when none is. Call it once, where the service builds its router.
    pub fn protect<S>(&self, router: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        match self.token() {
            Some(token) => router.route_layer(axum::middleware::from_fn_with_state(
                AdminToken(Arc::from(token.trim())),
                require_token,
            )),
            None => {
                tracing::warn!(
                    "ADMIN_TOKEN is not set: the /admin routes are open to anyone who can reach this port"
                );
                router
            }
        }
    }
}

/// The expected token, the middleware's state.
#[derive(Clone)]
struct AdminToken(Arc<str>);

/// Why an admin request was refused (always 401 `unauthorized`).
#[derive(Debug, thiserror::Error)]
pub enum AdminAuthError {
    #[error(
        "admin routes need `Authorization: Bearer <ADMIN_TOKEN>`; the request has no Authorization header"
    )]
    Missing,
    #[error("malformed Authorization header: expected `Bearer <ADMIN_TOKEN>`")]
    Malformed,
    #[error("wrong admin token")]
    Wrong,
}

impl IntoResponse for AdminAuthError {
    fn into_response(self) -> Response {
        let mut response =
            crate::error::render(&self, StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED);
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"admin\""),
        );
        response
    }
}

async fn require_token(
    State(AdminToken(expected)): State<AdminToken>,
    request: Request,
    next: Next,
) -> Result<Response, AdminAuthError> {
    check(request.headers().get(header::AUTHORIZATION), &expected)?;
    Ok(next.run(request).await)
}

/// The Authorization header against the expected token.
fn check(value: Option<&HeaderValue>, expected: &str) -> Result<(), AdminAuthError> {
    let value = value.ok_or(AdminAuthError::Missing)?;
    let token = bearer(value).ok_or(AdminAuthError::Malformed)?;
    if constant_time_eq(token.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(AdminAuthError::Wrong)
    }
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive, surrounding
/// spaces ignored); `None` for another scheme, an empty token or a value that is not text. The
/// gateway's caller authentication parses its header with it too.
pub fn bearer(value: &HeaderValue) -> Option<&str> {
    let (scheme, token) = value.to_str().ok()?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `a == b`, looking at every byte whatever the first difference is; only a length difference
/// returns early (the length of a random token is no secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimiser from turning the fold back into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Server, ServerArgs};
    use axum::routing::get;

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"", b"x"));
        let ok = HeaderValue::from_static("Bearer s3cret");
        assert!(check(Some(&ok), "s3cret").is_ok());
        let lower = HeaderValue::from_static("bearer  s3cret ");
        assert!(check(Some(&lower), "s3cret").is_ok());
        assert!(matches!(
            check(None, "s3cret"),
            Err(AdminAuthError::Missing)
        ));
        let basic = HeaderValue::from_static("Basic czNjcmV0");
        assert!(matches!(
            check(Some(&basic), "s3cret"),
            Err(AdminAuthError::Malformed)
        ));
        let wrong = HeaderValue::from_static("Bearer guess");
        assert!(matches!(
            check(Some(&wrong), "s3cret"),
            Err(AdminAuthError::Wrong)
        ));
    }

    #[test]
    fn an_empty_token_is_no_token() {
        assert_eq!(AdminArgs::default().token(), None);
        assert_eq!(AdminArgs::with_token("  ").token(), None);
        assert_eq!(AdminArgs::with_token("t").token(), Some("t"));
    }

    /// A server with `/admin/x` behind `args` and an open `/public`.
    async fn serve(args: AdminArgs) -> (String, tokio::sync::oneshot::Sender<()>) {
        let admin = Router::new().route("/admin/x", get(|| async { "admin" }));
        let router = Router::new()
            .route("/public", get(|| async { "public" }))
            .merge(args.protect(admin));
        let server = Server::bind(&ServerArgs::for_tests(1024), "admin-test", router)
            .await
            .unwrap();
        let base = format!("http://127.0.0.1:{}", server.port());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.serve(async {
            let _ = rx.await;
        }));
        (base, tx)
    }

    #[tokio::test]
    async fn the_token_guards_only_the_admin_routes() {
        let (base, _stop) = serve(AdminArgs::with_token("s3cret")).await;
        let http = reqwest::Client::new();
        let admin = format!("{base}/admin/x");

        let none = http.get(&admin).send().await.unwrap();
        assert_eq!(none.status(), 401);
        assert_eq!(none.headers()["www-authenticate"], "Bearer realm=\"admin\"");
        let body: serde_json::Value = none.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no Authorization header"),
            "{body}"
        );

        let wrong = http.get(&admin).bearer_auth("guess").send().await.unwrap();
        assert_eq!(wrong.status(), 401);
        let body: serde_json::Value = wrong.json().await.unwrap();
        assert_eq!(body["error"]["message"], "wrong admin token");

        let right = http.get(&admin).bearer_auth("s3cret").send().await.unwrap();
        assert_eq!(right.status(), 200);
        assert_eq!(right.text().await.unwrap(), "admin");

        let public = http.get(format!("{base}/public")).send().await.unwrap();
        assert_eq!(public.status(), 200, "only the admin routes need the token");
    }

    #[tokio::test]
    async fn without_a_token_the_admin_routes_are_open() {
        let (base, _stop) = serve(AdminArgs::default()).await;
        let open = reqwest::get(format!("{base}/admin/x")).await.unwrap();
        assert_eq!(open.status(), 200);
    }
}
