//! Test harness for api-gateway: the real gateway on port 0 in front of either a recording stand-in
//! for order-service (to see exactly what the gateway forwards) or the whole checkout stack (real
//! order-, payment- and inventory-service, SQLite in memory, librdkafka's MockCluster).
// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;
use telemetry::testing::TestTelemetry;
#[allow(unused_imports)] // each test binary uses a different part of the harness
pub use telemetry::testing::{
    attribute as attr, child, duration, eventually, is_child_of, is_error, is_root,
    span_named as span, trace_id, wait_for_names,
};
use tokio::sync::oneshot;

/// A running service; stops when dropped.
pub struct Running {
    pub base: String,
    _shutdown: oneshot::Sender<()>,
}

fn spawn_server<F>(port: u16, run: impl FnOnce(oneshot::Receiver<()>) -> F) -> Running
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    tokio::spawn(run(rx));
    Running {
        base: format!("http://127.0.0.1:{port}"),
        _shutdown: tx,
    }
}

pub fn memory_url(service: &str) -> String {
    format!(
        "sqlite:file:{service}_{}?mode=memory&cache=shared",
        uuid::Uuid::new_v4().simple()
    )
}

pub async fn gateway(config: api_gateway::Config) -> Running {
    let app = api_gateway::Application::build(config)
        .await
        .expect("build api-gateway");
    let port = app.port();
    spawn_server(port, |rx| {
        app.run_until_stopped(async {
            let _ = rx.await;
        })
    })
}

/// What the recording order-service saw: one entry per forwarded request.
#[derive(Clone, Default)]
pub struct Recorded(Arc<Mutex<Vec<HeaderMap>>>);

impl Recorded {
    pub fn requests(&self) -> Vec<HeaderMap> {
        self.0.lock().unwrap().clone()
    }
    pub fn last_header(&self, name: &str) -> Option<String> {
        self.requests()
            .last()
            .and_then(|h| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned))
    }
}

/// A stand-in order-service that records each request's headers and answers 201 with an order.
pub async fn recording_order_service() -> (Running, Recorded) {
    use axum::routing::post;
    let recorded = Recorded::default();
    let sink = recorded.clone();
    let router = axum::Router::new().route(
        "/orders",
        post(move |headers: HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                sink.0.lock().unwrap().push(headers);
                let req: contracts::orders::CreateOrderRequest =
                    serde_json::from_str(&body).expect("the gateway forwards the body unchanged");
                (
                    axum::http::StatusCode::CREATED,
                    axum::Json(contracts::orders::Order {
                        id: "ord_recorded".into(),
                        status: contracts::orders::OrderStatus::Confirmed,
                        items: req.items,
                        total_cents: 1,
                        charge_id: None,
                        reservation_id: None,
                        created_at_ms: 0,
                    }),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let running = spawn_server(port, |rx| async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await?;
        Ok(())
    });
    (running, recorded)
}

/// A TCP listener that accepts connections and never answers (for timeout tests).
pub async fn silent_listener() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while held.len() < 64 {
            match listener.accept().await {
                Ok((socket, _)) => held.push(socket),
                Err(_) => break,
            }
        }
        std::future::pending::<()>().await;
    });
    format!("http://{addr}")
}

/// The whole checkout system behind a gateway.
pub struct FullStack {
    pub telemetry: TestTelemetry,
    pub gateway: Running,
    pub client: reqwest::Client,
    _services: Vec<Running>,
}

impl FullStack {
    pub async fn start(kafka: Option<&str>) -> Self {
        Self::start_with(kafka, |_| {}).await
    }

    pub async fn start_with(
        kafka: Option<&str>,
        tweak_inventory: impl FnOnce(&mut inventory_service::Config),
    ) -> Self {
        let telemetry = telemetry::testing::init();
        // The outside world: one card-provider for the payment calls and the mail step.
        let provider = card_provider::spawn(card_provider::Config::for_tests())
            .await
            .expect("start card-provider");
        let payment = {
            let mut config = payment_service::Config::for_tests(&memory_url("payment"), None);
            config.provider.provider_url = provider.clone();
            let app = payment_service::Application::build(config)
                .await
                .expect("build payment-service");
            let port = app.port();
            spawn_server(port, |rx| {
                app.run_until_stopped(async {
                    let _ = rx.await;
                })
            })
        };
        let mut inventory_config =
            inventory_service::Config::for_tests(&memory_url("inventory"), kafka);
        inventory_config.mail_url = provider.clone();
        tweak_inventory(&mut inventory_config);
        let inventory = inventory_app(inventory_config).await;
        let order = {
            let mut config = order_service::Config::for_tests(&memory_url("order"), kafka);
            config.payment_service_url = payment.base.clone();
            config.inventory_service_url = inventory.base.clone();
            let app = order_service::Application::build(config)
                .await
                .expect("build order-service");
            let port = app.port();
            spawn_server(port, |rx| {
                app.run_until_stopped(async {
                    let _ = rx.await;
                })
            })
        };
        let gateway = gateway(api_gateway::Config::for_tests(&order.base)).await;
        Self {
            telemetry,
            gateway,
            client: reqwest::Client::new(),
            _services: vec![payment, inventory, order],
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway.base)
    }

    pub async fn checkout(&self, token: &str, scenario: Option<&str>) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url("/orders"))
            .json(&order_body(token));
        if let Some(s) = scenario {
            req = req.header("x-tracelab-scenario", s);
        }
        req.send().await.expect("POST /orders")
    }

    pub async fn trace(&self, trace_id: &str, names: &[&str]) -> Vec<SpanData> {
        wait_for_names(&self.telemetry, trace_id, names).await
    }
}

/// The real inventory-service (its Kafka consumer runs when the config names brokers).
pub async fn inventory_app(config: inventory_service::Config) -> Running {
    let app = inventory_service::Application::build(config)
        .await
        .expect("build inventory-service");
    let port = app.port();
    spawn_server(port, |rx| {
        app.run_until_stopped(async {
            let _ = rx.await;
        })
    })
}

pub fn order_body(token: &str) -> serde_json::Value {
    serde_json::json!({
        "items": [{"sku": "LAPTOP-1", "qty": 1}],
        "payment": {"method": "card", "token": token},
    })
}

pub fn kind(span: &SpanData) -> SpanKind {
    span.span_kind.clone()
}

pub fn ms(d: Duration) -> u128 {
    d.as_millis()
}
