//! Wiring: `Application::build` creates the flags, the authenticator and the order-service client and
//! binds the listener; `run_until_stopped` serves until the shutdown future resolves.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::downstream::OrderService;
use crate::flags::{self, ScenarioFlags};
use crate::routes;

/// What every handler can reach; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub flags: ScenarioFlags,
    pub auth: Authenticator,
    pub orders: OrderService,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let state = AppState(Arc::new(Inner {
            flags: ScenarioFlags::from_spec(&config.scenario_flags)?,
            auth: Authenticator::new(config.tokens()?, config.anonymous_user.clone()),
            orders: OrderService::new(&config.order_service_url, config.downstream_timeout()),
        }));
        let router =
            routes::router(state.clone()).layer(DefaultBodyLimit::max(config.max_body_bytes));
        // The scenario middleware wraps the telemetry layer, so the SERVER span already sees the
        // decision in its (extracted) baggage.
        let router = telemetry::http::instrument_router(router).layer(
            axum::middleware::from_fn_with_state(state, flags::apply_scenario),
        );
        let listener = TcpListener::bind(SocketAddr::new(config.bind_addr, config.port)).await?;
        tracing::info!(addr = %listener.local_addr()?, "api-gateway listening");
        Ok(Self { listener, router })
    }

    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}
