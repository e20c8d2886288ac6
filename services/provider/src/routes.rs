//! The HTTP API: `POST /v1/charges`, `POST /v1/refunds`, `POST /v1/emails`, list and fetch routes
//! for tests and the curious, `GET /health`. Outcomes are chosen the way Stripe's test mode chooses
//! them: by the card token (`tok_chargeDeclined` is declined) and by the test-mode header
//! `X-Simulate` (`slow`, `rate_limited`, `decline`), which callers send only in test mode.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use contracts::payments::IDEMPOTENCY_KEY_HEADER;
use contracts::provider::{
    Charge, CreateCharge, CreateRefund, DECLINE_MESSAGE, DECLINED_TOKENS, Email, List,
    ProviderError, ProviderErrorBody, REPLAYED_HEADER, Refund, SIMULATE_DECLINE, SIMULATE_HEADER,
    SIMULATE_RATE_LIMITED, SIMULATE_SLOW, SendEmail,
};
use serde::Deserialize;
use serde::Serialize;
use uuid::Uuid;

use crate::AppState;
use crate::ledger::{Once, RefundRefused, Stored, respond_after};

pub fn router(state: AppState) -> Router {
    let limit = state.config.server.max_body_bytes;
    Router::new()
        .route("/v1/charges", post(create_charge).get(list_charges))
        .route("/v1/charges/{id}", get(get_charge))
        .route("/v1/refunds", post(create_refund).get(list_refunds))
        .route("/v1/emails", post(send_email).get(list_emails))
        .route("/health", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// A Stripe-shaped error answer.
fn error(
    status: StatusCode,
    kind: &str,
    code: Option<&str>,
    message: impl Into<String>,
) -> Response {
    let body = ProviderErrorBody {
        error: ProviderError {
            r#type: kind.to_owned(),
            code: code.map(str::to_owned),
            decline_code: None,
            message: message.into(),
            charge: None,
        },
    };
    (status, Json(body)).into_response()
}

/// Bad JSON: 413 stays 413; the text goes through card-data redaction, because serde quotes the
/// offending value and a card number in the wrong field must not come back.
fn rejection(r: JsonRejection) -> Response {
    let status = match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => StatusCode::BAD_REQUEST,
    };
    let message = contracts::redact::redact(&r.body_text());
    error(
        status,
        "invalid_request_error",
        Some("parameter_invalid"),
        message,
    )
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn simulate(headers: &HeaderMap, mode: &str) -> bool {
    header(headers, SIMULATE_HEADER).is_some_and(|v| v.split(',').any(|m| m.trim() == mode))
}

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn stored<T: Serialize>(fingerprint: &str, status: StatusCode, body: &T) -> Stored {
    Stored {
        fingerprint: fingerprint.to_owned(),
        status: status.as_u16(),
        body: serde_json::to_value(body).unwrap_or_default(),
    }
}

fn answer(outcome: Once) -> Response {
    let (stored, replayed) = match outcome {
        Once::Fresh(s) => (s, false),
        Once::Replay(s) => (s, true),
        Once::Mismatch => {
            return error(
                StatusCode::BAD_REQUEST,
                "idempotency_error",
                Some("idempotency_key_in_use"),
                "Keys for idempotent requests can only be used with the same parameters they were first used with.",
            );
        }
    };
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Json(stored.body)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

/// A stable description of the request, so a reused key with other parameters is refused. The
/// token is part of it only through its outcome class, so nothing derived from it is kept.
fn charge_fingerprint(req: &CreateCharge) -> String {
    format!(
        "{}|{}|{}|{:?}",
        req.amount,
        req.currency.to_ascii_lowercase(),
        DECLINED_TOKENS.contains(&req.source.as_str()),
        req.metadata
    )
}

/// What is wrong with a charge request, if anything (a message safe to send back).
fn validate_charge(req: &CreateCharge) -> Result<(), &'static str> {
    if req.amount < 1 || req.amount > 99_999_999 {
        return Err("amount must be between 1 and 99999999 (minor units)");
    }
    if req.currency.len() != 3 || !req.currency.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err("currency must be a three-letter ISO code");
    }
    if !req.source.starts_with("tok_") {
        // Never echo the source: it might be a card number sent by mistake.
        return Err("source must be a card token (tok_...)");
    }
    Ok(())
}

async fn create_charge(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CreateCharge>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(r) => return rejection(r),
    };
    if let Err(message) = validate_charge(&req) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("parameter_invalid"),
            message,
        );
    }
    let key = header(&headers, IDEMPOTENCY_KEY_HEADER);
    let fingerprint = charge_fingerprint(&req);
    let config = &state.config;
    if simulate(&headers, SIMULATE_RATE_LIMITED)
        && state
            .ledger
            .rate_limited(key.unwrap_or(&fingerprint), config.rate_limited_attempts)
    {
        // Refused before any work, and not stored: a retry with the same key may go through.
        respond_after(config.refusal_latency()).await;
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            Some("rate_limit"),
            "Too many requests hit the API too quickly.",
        );
    }
    let declined =
        DECLINED_TOKENS.contains(&req.source.as_str()) || simulate(&headers, SIMULATE_DECLINE);
    let outcome = state.ledger.once(key, &fingerprint, |books| {
        let charge = Charge {
            id: format!("ch_{}", Uuid::new_v4().simple()),
            object: "charge".into(),
            amount: req.amount,
            amount_refunded: 0,
            currency: req.currency.to_ascii_lowercase(),
            status: if declined { "failed" } else { "succeeded" }.into(),
            paid: !declined,
            created: now_s(),
            metadata: req.metadata.clone(),
        };
        books.insert_charge(charge.clone());
        if declined {
            let body = ProviderErrorBody {
                error: ProviderError {
                    r#type: "card_error".into(),
                    code: Some("card_declined".into()),
                    decline_code: Some("generic_decline".into()),
                    message: DECLINE_MESSAGE.into(),
                    charge: Some(charge.id),
                },
            };
            stored(&fingerprint, StatusCode::PAYMENT_REQUIRED, &body)
        } else {
            stored(&fingerprint, StatusCode::OK, &charge)
        }
    });
    respond_after(config.charge_latency(simulate(&headers, SIMULATE_SLOW))).await;
    answer(outcome)
}

async fn create_refund(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<CreateRefund>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(r) => return rejection(r),
    };
    let key = header(&headers, IDEMPOTENCY_KEY_HEADER);
    let fingerprint = format!("{}|{:?}", req.charge, req.amount);
    let outcome = state.ledger.once(key, &fingerprint, |books| {
        let Some(charge) = books.charge(&req.charge) else {
            let body = ProviderErrorBody {
                error: ProviderError {
                    r#type: "invalid_request_error".into(),
                    code: Some("resource_missing".into()),
                    decline_code: None,
                    message: format!("No such charge: '{}'", req.charge.chars().take(64).collect::<String>()),
                    charge: None,
                },
            };
            return stored(&fingerprint, StatusCode::NOT_FOUND, &body);
        };
        let amount = req.amount.unwrap_or(charge.amount - charge.amount_refunded);
        let refund = Refund {
            id: format!("re_{}", Uuid::new_v4().simple()),
            object: "refund".into(),
            charge: req.charge.clone(),
            amount,
            status: "succeeded".into(),
            created: now_s(),
        };
        match books.refund(refund.clone()) {
            Ok(_) => stored(&fingerprint, StatusCode::OK, &refund),
            Err(refused) => {
                let message = match refused {
                    RefundRefused::NoSuchCharge => "No such charge".to_owned(),
                    RefundRefused::NotPaid => "Charge was not paid and cannot be refunded".to_owned(),
                    RefundRefused::Exceeds { left } => {
                        format!("Refund amount ({amount}) is greater than unrefunded amount on charge ({left})")
                    }
                };
                let body = ProviderErrorBody {
                    error: ProviderError {
                        r#type: "invalid_request_error".into(),
                        code: Some("charge_not_refundable".into()),
                        decline_code: None,
                        message,
                        charge: Some(req.charge.clone()),
                    },
                };
                stored(&fingerprint, StatusCode::BAD_REQUEST, &body)
            }
        }
    });
    respond_after(
        state
            .config
            .charge_latency(simulate(&headers, SIMULATE_SLOW)),
    )
    .await;
    answer(outcome)
}

async fn send_email(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<SendEmail>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(b) => b,
        Err(r) => return rejection(r),
    };
    if req.template.is_empty() || req.template.len() > 64 {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("parameter_invalid"),
            "template must be 1-64 characters",
        );
    }
    let key = header(&headers, IDEMPOTENCY_KEY_HEADER);
    let fingerprint = format!("{}|{:?}", req.template, req.data);
    let outcome = state.ledger.once(key, &fingerprint, |books| {
        let email = Email {
            id: format!("em_{}", Uuid::new_v4().simple()),
            object: "email".into(),
            template: req.template.clone(),
            status: "queued".into(),
            created: now_s(),
            data: req.data.clone(),
        };
        books.insert_email(email.clone());
        stored(&fingerprint, StatusCode::ACCEPTED, &email)
    });
    respond_after(state.config.mail_latency(simulate(&headers, SIMULATE_SLOW))).await;
    answer(outcome)
}

#[derive(Debug, Deserialize)]
struct Limit {
    limit: Option<usize>,
}

impl Limit {
    fn get(&self) -> usize {
        self.limit.unwrap_or(100).clamp(1, 10_000)
    }
}

fn list<T>(data: Vec<T>) -> Json<List<T>> {
    Json(List {
        object: "list".into(),
        data,
    })
}

async fn list_charges(
    State(state): State<AppState>,
    Query(limit): Query<Limit>,
) -> Json<List<Charge>> {
    list(state.ledger.charges(limit.get()))
}

async fn list_refunds(
    State(state): State<AppState>,
    Query(limit): Query<Limit>,
) -> Json<List<Refund>> {
    list(state.ledger.refunds(limit.get()))
}

async fn list_emails(
    State(state): State<AppState>,
    Query(limit): Query<Limit>,
) -> Json<List<Email>> {
    list(state.ledger.emails(limit.get()))
}

async fn get_charge(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match state.ledger.charge(&id) {
        Some(charge) => Json(charge).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("resource_missing"),
            "No such charge",
        ),
    }
}
