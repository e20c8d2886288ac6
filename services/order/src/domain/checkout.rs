//! `process_order`: the checkout orchestration and its INTERNAL spans (names follow the seeds):
//! `validate_order` → `calculate_total` → `INSERT orders` → `charge_payment` → `reserve_inventory`
//! (strictly after the charge ended) → confirm + outbox event in one transaction. A failed
//! reservation after a successful charge is compensated with a refund (`compensate_payment`).

use std::time::Instant;

use contracts::events::{Envelope, OrderPlaced};
use contracts::inventory::{ReservationRequest, ReservationResponse, StockLevel};
use contracts::orders::{CreateOrderRequest, LineItem, Order, OrderStatus, PaymentInfo};
use contracts::payments::{
    ChargeRequest, ChargeResponse, ChargeStatus, IDEMPOTENCY_KEY_HEADER, RefundRequest,
    RefundResponse,
};
use contracts::scenario::{self, Scenario};
use opentelemetry::KeyValue;
use opentelemetry::trace::Status;
use tracing::{Instrument, Span, field};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::clients::Reply;
use crate::db::now_ms;
use crate::domain::idempotency::{self, Acquired, ClientKey, StoredAnswer};
use crate::domain::repository::{NewOrder, OutboxRow};
use crate::domain::validation;
use crate::error::ApiError;
use crate::startup::AppState;

/// The (simulated) processor payment-service charges through; recorded as `payment.processor`.
pub const PAYMENT_PROCESSOR: &str = "stripe";
pub const CURRENCY: &str = "USD";

/// Marks `span` as failed: ERROR status plus an `exception` event (OpenTelemetry's exception semconv).
pub fn mark_error(span: &Span, err: &ApiError) {
    span.set_status(Status::error(err.to_string()));
    span.in_scope(|| {
        tracing::warn!(
            "exception.type" = err.code(),
            exception.message = %err,
            "exception"
        );
    });
}

/// The Idempotency-Key of an order's charge: a retried checkout of the same order never charges twice.
/// A client Idempotency-Key is bound to one order id, so it derives from the client's key too.
pub fn idempotency_key(order_id: &str) -> String {
    format!("{order_id}:charge")
}

fn new_order_id() -> String {
    format!("ord_{}", uuid::Uuid::now_v7().simple())
}

/// What `POST /orders` answers.
pub enum Placed {
    /// This request ran the checkout (or resumed the order bound to its Idempotency-Key).
    Ran(Result<Order, ApiError>),
    /// The stored answer of an earlier request with the same Idempotency-Key, replayed as it was.
    Replayed(StoredAnswer),
}

/// Runs one checkout inside a `process_order` span and records `order_creation_duration_seconds`.
/// With a client key the checkout runs at most once per key (see [`super::idempotency`]).
pub async fn place_order(
    state: &AppState,
    req: CreateOrderRequest,
    user: Option<&str>,
    key: Option<ClientKey>,
) -> Placed {
    let scenario =
        Scenario::from_baggage(telemetry::baggage::get(scenario::BAGGAGE_KEY).as_deref());
    let started = Instant::now();
    let span = tracing::info_span!(
        "process_order",
        order.id = field::Empty,
        order.item_count = req.items.len() as i64,
        order.total_cents = field::Empty,
        order.status = field::Empty,
        order.idempotent_replay = field::Empty,
        user.id = user,
        tracelab.scenario = scenario.name(),
    );
    let result = process_order(state, new_order_id(), req, scenario, key.as_ref())
        .instrument(span.clone())
        .await;
    let outcome = match &result {
        Ok(Placed::Ran(Ok(order))) => {
            span.record("order.status", order.status.as_str());
            order.status.as_str()
        }
        Ok(Placed::Replayed(_)) => {
            span.record("order.idempotent_replay", true);
            "replayed"
        }
        Ok(Placed::Ran(Err(err))) | Err(err) => {
            mark_error(&span, err);
            err.code()
        }
    };
    drop(span);
    state.metrics.order_creation_duration.record(
        started.elapsed().as_secs_f64(),
        &[
            KeyValue::new("outcome", outcome),
            KeyValue::new(scenario::ATTRIBUTE, scenario.name()),
        ],
    );
    result.unwrap_or_else(|err| Placed::Ran(Err(err)))
}

/// Validates and prices, then (with a key) claims the key, and runs or resumes the order bound to it.
/// `Err` is a failure before anything was claimed or written.
async fn process_order(
    state: &AppState,
    fresh_order_id: String,
    req: CreateOrderRequest,
    scenario: Scenario,
    key: Option<&ClientKey>,
) -> Result<Placed, ApiError> {
    validate_order(&req)?;
    let unit_prices = calculate_total(state, &req.items).await?;
    let total_cents: i64 = req
        .items
        .iter()
        .zip(&unit_prices)
        .map(|(item, price)| item.qty * price)
        .sum();
    Span::current().record("order.total_cents", total_cents);
    let priced = Priced {
        req,
        unit_prices,
        total_cents,
        scenario,
    };

    let Some(key) = key else {
        Span::current().record("order.id", fresh_order_id.as_str());
        return Ok(Placed::Ran(
            run_checkout(state, &fresh_order_id, priced, None).await,
        ));
    };
    // Claimed only now: a request that fails validation or pricing stores nothing, key included.
    let fingerprint = idempotency::fingerprint(&priced.req);
    let held = match idempotency::acquire(state, key, &fingerprint, &fresh_order_id).await? {
        Acquired::Replay(answer) => {
            Span::current().record("order.id", answer.order_id.as_str());
            tracing::info!(
                order.id = %answer.order_id,
                "idempotent replay: returning the stored answer for this Idempotency-Key"
            );
            return Ok(Placed::Replayed(answer));
        }
        Acquired::Held(held) => held,
    };
    Span::current().record("order.id", held.order_id.as_str());
    let result = if held.resumed {
        resume(state, &held.order_id, priced).await
    } else {
        run_checkout(state, &held.order_id, priced, None).await
    };
    idempotency::finish(state, key, &held, &result).await;
    Ok(Placed::Ran(result))
}

/// A validated, priced order request.
struct Priced {
    req: CreateOrderRequest,
    unit_prices: Vec<i64>,
    total_cents: i64,
    scenario: Scenario,
}

/// Continues an order an earlier request with the same key started and did not finish answering
/// (retryable failure, cancellation, crash). A pending order runs again from the charge: payment
/// replays the charge of `{order_id}:charge` instead of charging twice, inventory returns the
/// order's reservation. A settled order answers from its stored state.
async fn resume(state: &AppState, order_id: &str, priced: Priced) -> Result<Order, ApiError> {
    let Some(order) = state.repo.get_order(order_id).await? else {
        // The earlier request died before storing the order.
        return run_checkout(state, order_id, priced, None).await;
    };
    match order.status {
        OrderStatus::Pending => {
            run_checkout(state, order_id, priced, Some(order.created_at_ms)).await
        }
        OrderStatus::Confirmed => Ok(order),
        OrderStatus::PaymentFailed => Err(ApiError::CardDeclined(format!(
            "the card was declined for order {order_id}"
        ))),
        OrderStatus::Cancelled => Err(ApiError::OutOfStock(format!(
            "order {order_id} was cancelled (out of stock) and its charge refunded"
        ))),
    }
}

/// The checkout proper. `stored_at_ms` is `Some` when the order row already exists (a resumed order):
/// it is not inserted again.
async fn run_checkout(
    state: &AppState,
    order_id: &str,
    priced: Priced,
    stored_at_ms: Option<i64>,
) -> Result<Order, ApiError> {
    let Priced {
        req,
        unit_prices,
        total_cents,
        scenario,
    } = priced;
    let created_at_ms = match stored_at_ms {
        Some(at) => at,
        None => {
            let created_at_ms = now_ms();
            state
                .repo
                .insert_order(&NewOrder {
                    id: order_id,
                    items: &req.items,
                    unit_prices: &unit_prices,
                    total_cents,
                    currency: CURRENCY,
                    payment_method: &req.payment.method,
                    scenario: scenario.name(),
                    created_at_ms,
                })
                .await?;
            created_at_ms
        }
    };
    // Captured here so the outbox relay's PRODUCER span becomes a child of process_order, even though
    // it is published later from another task.
    let trace_context = telemetry::propagation::inject_current();

    if state
        .check_stock_first
        .load(std::sync::atomic::Ordering::Relaxed)
        && let Err(err) = check_stock(state, &req.items).await
    {
        if matches!(err, ApiError::OutOfStock(_)) {
            state
                .repo
                .set_status(order_id, OrderStatus::Cancelled, now_ms())
                .await?;
        }
        return Err(err);
    }
    let charge = match charge_payment(state, order_id, &req.payment, total_cents, scenario).await {
        Ok(charge) => charge,
        Err(err @ ApiError::CardDeclined(_)) => {
            state
                .repo
                .set_status(order_id, OrderStatus::PaymentFailed, now_ms())
                .await?;
            return Err(err);
        }
        // A timeout leaves the outcome unknown: the order stays `pending`, and a retry with the same
        // Idempotency-Key resumes it; payment-service returns the first charge for its key.
        Err(err) => return Err(err),
    };
    state
        .repo
        .set_charge(order_id, &charge.charge_id, now_ms())
        .await?;

    let reservation = match reserve_inventory(state, order_id, &req.items).await {
        Ok(reservation) => reservation,
        Err(err) => {
            compensate_payment(state, order_id, &charge).await;
            state
                .repo
                .set_status(order_id, OrderStatus::Cancelled, now_ms())
                .await?;
            return Err(err);
        }
    };

    let event = Envelope::order_placed(
        OrderPlaced {
            order_id: order_id.to_owned(),
            items: req.items.clone(),
            total_cents,
            charge_id: Some(charge.charge_id.clone()),
        },
        now_ms(),
    );
    let row = OutboxRow {
        id: event.id.to_string(),
        aggregate_id: order_id.to_owned(),
        topic: state.kafka_topic.clone(),
        message_key: order_id.to_owned(),
        event_type: event.r#type.clone(),
        payload: serde_json::to_string(&event).map_err(anyhow::Error::from)?,
        trace_context: serde_json::to_string(&trace_context).map_err(anyhow::Error::from)?,
        created_at_ms: event.occurred_at_ms,
        attempts: 0,
    };
    let confirmed = state
        .repo
        .confirm_with_event(order_id, &reservation.reservation_id, &row, now_ms())
        .await?;
    if !confirmed {
        // Another run of this order (a retry that took over its key) settled it first, with its own
        // event: answer with what it stored.
        tracing::warn!(order.id = %order_id, "order was settled by another run; not confirming again");
        return state
            .repo
            .get_order(order_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(order_id.to_owned()));
    }
    state.outbox_notify.notify_one();

    Ok(Order {
        id: order_id.to_owned(),
        status: OrderStatus::Confirmed,
        items: req.items,
        total_cents,
        charge_id: Some(charge.charge_id),
        reservation_id: Some(reservation.reservation_id),
        created_at_ms,
    })
}

fn validate_order(req: &CreateOrderRequest) -> Result<(), ApiError> {
    let span = tracing::info_span!("validate_order", order.item_count = req.items.len() as i64);
    let result = span.in_scope(|| validation::validate(req));
    if let Err(err) = &result {
        mark_error(&span, err);
    }
    result
}

/// Prices each line from the products table; an unknown SKU fails the order before anything is written.
#[tracing::instrument(name = "calculate_total", skip_all, fields(order.item_count = items.len() as i64))]
async fn calculate_total(state: &AppState, items: &[LineItem]) -> Result<Vec<i64>, ApiError> {
    let result = async {
        let mut skus: Vec<&str> = items.iter().map(|i| i.sku.as_str()).collect();
        skus.sort_unstable();
        skus.dedup();
        let prices = state.repo.prices(&skus).await?;
        items
            .iter()
            .map(|item| {
                prices
                    .get(&item.sku)
                    .copied()
                    .ok_or_else(|| ApiError::UnknownSku(item.sku.clone()))
            })
            .collect()
    }
    .await;
    if let Err(err) = &result {
        mark_error(&Span::current(), err);
    }
    result
}

#[tracing::instrument(
    name = "charge_payment",
    skip_all,
    fields(
        payment.method = %payment.method,
        payment.processor = PAYMENT_PROCESSOR,
        payment.amount_cents = amount_cents,
        payment.charge_id = field::Empty,
        tracelab.scenario = scenario.name(),
    )
)]
async fn charge_payment(
    state: &AppState,
    order_id: &str,
    payment: &PaymentInfo,
    amount_cents: i64,
    scenario: Scenario,
) -> Result<ChargeResponse, ApiError> {
    let request = ChargeRequest {
        order_id: order_id.to_owned(),
        amount_cents,
        currency: CURRENCY.to_owned(),
        method: payment.method.clone(),
        token: payment.token.clone(),
    };
    let key = idempotency_key(order_id);
    // propagation.broken: this hop "forgets" the trace context, so payment starts a new trace.
    let propagate = scenario != Scenario::PropagationBroken;
    let result = match state
        .payment
        .post::<_, ChargeResponse>(
            "/charges",
            &request,
            &[(IDEMPOTENCY_KEY_HEADER, &key)],
            propagate,
        )
        .await
    {
        Ok(Reply::Ok(charge)) if charge.status == ChargeStatus::Succeeded => Ok(charge),
        Ok(Reply::Ok(charge)) => Err(ApiError::CardDeclined(format!(
            "charge {} was declined",
            charge.charge_id
        ))),
        Ok(Reply::Rejected(status, body)) if status == reqwest::StatusCode::PAYMENT_REQUIRED => {
            Err(ApiError::CardDeclined(body.error.message))
        }
        Ok(Reply::Rejected(status, body)) => Err(ApiError::Upstream {
            service: "payment-service",
            message: format!("{status}: {}: {}", body.error.code, body.error.message),
        }),
        Err(err) => Err(err),
    };
    match &result {
        Ok(charge) => {
            Span::current().record("payment.charge_id", charge.charge_id.as_str());
        }
        Err(err) => mark_error(&Span::current(), err),
    }
    result
}

/// `ORDER_CHECK_STOCK_FIRST`: reads every item's shelf before charging. A check, not a hold —
/// another order may still take the last unit before `reserve_inventory`, and then the refund
/// compensates as without the check — but the common case, a sold-out item, costs no charge.
#[tracing::instrument(name = "check_stock", skip_all, fields(order.item_count = items.len() as i64))]
async fn check_stock(state: &AppState, items: &[LineItem]) -> Result<(), ApiError> {
    for item in items {
        let level = match state
            .inventory
            .get::<StockLevel>(&format!("/stock/{}", item.sku))
            .await
        {
            Ok(Reply::Ok(level)) => level,
            Ok(Reply::Rejected(status, body)) => {
                let err = ApiError::Upstream {
                    service: "inventory-service",
                    message: format!("{status}: {}: {}", body.error.code, body.error.message),
                };
                mark_error(&Span::current(), &err);
                return Err(err);
            }
            Err(err) => {
                mark_error(&Span::current(), &err);
                return Err(err);
            }
        };
        if level.available < item.qty {
            let err = ApiError::OutOfStock(format!(
                "{}: {} requested, {} available",
                item.sku, item.qty, level.available
            ));
            mark_error(&Span::current(), &err);
            return Err(err);
        }
    }
    Ok(())
}

#[tracing::instrument(
    name = "reserve_inventory",
    skip_all,
    fields(order.id = %order_id, order.item_count = items.len() as i64, inventory.reservation_id = field::Empty)
)]
async fn reserve_inventory(
    state: &AppState,
    order_id: &str,
    items: &[LineItem],
) -> Result<ReservationResponse, ApiError> {
    let request = ReservationRequest {
        order_id: order_id.to_owned(),
        items: items.to_vec(),
    };
    let result = match state
        .inventory
        .post::<_, ReservationResponse>("/reservations", &request, &[], true)
        .await
    {
        Ok(Reply::Ok(reservation)) => Ok(reservation),
        Ok(Reply::Rejected(status, body)) if status == reqwest::StatusCode::CONFLICT => {
            Err(ApiError::OutOfStock(body.error.message))
        }
        Ok(Reply::Rejected(status, body)) => Err(ApiError::Upstream {
            service: "inventory-service",
            message: format!("{status}: {}: {}", body.error.code, body.error.message),
        }),
        Err(err) => Err(err),
    };
    match &result {
        Ok(r) => {
            Span::current().record("inventory.reservation_id", r.reservation_id.as_str());
        }
        Err(err) => mark_error(&Span::current(), err),
    }
    result
}

/// Refunds the charge of an order that cannot be fulfilled. A failed refund is logged loudly (it needs
/// an operator) but does not change what the caller is told: the order itself failed.
#[tracing::instrument(
    name = "compensate_payment",
    skip_all,
    fields(order.id = %order_id, payment.charge_id = %charge.charge_id, payment.refund_id = field::Empty)
)]
async fn compensate_payment(state: &AppState, order_id: &str, charge: &ChargeResponse) {
    let request = RefundRequest {
        charge_id: charge.charge_id.clone(),
        order_id: order_id.to_owned(),
        amount_cents: charge.amount_cents,
    };
    let result = match state
        .payment
        .post::<_, RefundResponse>("/refunds", &request, &[], true)
        .await
    {
        Ok(Reply::Ok(refund)) => Ok(refund),
        Ok(Reply::Rejected(status, body)) => Err(ApiError::Upstream {
            service: "payment-service",
            message: format!("refund rejected: {status}: {}", body.error.message),
        }),
        Err(err) => Err(err),
    };
    match result {
        Ok(refund) => {
            Span::current().record("payment.refund_id", refund.refund_id.as_str());
            tracing::info!(order.id = %order_id, "charge refunded after failed reservation");
        }
        Err(err) => {
            mark_error(&Span::current(), &err);
            tracing::error!(
                order.id = %order_id,
                error = %err,
                "refund failed: charge must be refunded by an operator"
            );
        }
    }
}
