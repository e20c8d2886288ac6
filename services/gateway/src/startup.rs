//! Wiring: `Application::build` creates the flags, the authenticator and the order-service client and
//! binds the listener; `run_until_stopped` serves until the shutdown future resolves (both through
//! `service_kit::Server`).

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use service_kit::Server;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::downstream::OrderService;
use crate::flags::{self, ScenarioFlags};
use crate::routes;

/// What every handler can reach; cheap to clone (the parts that are not `Clone` sit in an `Arc`).
#[derive(Clone)]
pub struct AppState {
    pub flags: Arc<ScenarioFlags>,
    pub auth: Arc<Authenticator>,
    pub orders: Arc<OrderService>,
}

pub struct Application {
    server: Server,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let state = AppState {
            flags: Arc::new(ScenarioFlags::from_spec(&config.scenario_flags)?),
            auth: Arc::new(Authenticator::new(
                config.tokens()?,
                config.anonymous_user.clone(),
            )),
            orders: Arc::new(OrderService::new(
                &config.order_service_url,
                config.downstream_timeout(),
            )),
        };
        let router = routes::router(state.clone(), &config.admin)
            .layer(DefaultBodyLimit::max(config.server.max_body_bytes));
        // The scenario middleware wraps the telemetry layer, so the SERVER span already sees the
        // decision in its (extracted) baggage. The health probes stay outside both: they neither
        // trace nor count as traffic. Readiness deliberately does not follow order-service (a
        // downstream outage must not pull every gateway out of the load balancer).
        let router = telemetry::http::instrument_router(router)
            .layer(axum::middleware::from_fn_with_state(
                state,
                flags::apply_scenario,
            ))
            .merge(service_kit::health::always_ready());
        let server = Server::bind(&config.server, "api-gateway", router).await?;
        Ok(Self { server })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.server.serve(shutdown).await
    }
}
