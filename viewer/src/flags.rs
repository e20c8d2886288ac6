//! The flags panel's data: what the browser receives (types defined here, so the wasm bundle never
//! depends on `contracts`), the server functions behind `/flags`, and (ssr only) the HTTP client
//! towards the services' admin routes. The viewer's server reads the scenario catalogue from
//! `contracts::scenario::REGISTRY`, the flags from the gateway (`GATEWAY_URL`, `GET/PUT
//! /admin/flags`) and the run-time fixes from inventory (`INVENTORY_URL`, `/admin/slow-query` and
//! `/admin/consumer`), sending `Authorization: Bearer <ADMIN_TOKEN>`; the browser only ever calls the
//! viewer's own `/_viewer/` server functions, so the token never leaves the server.

use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use serde::{Deserialize, Serialize};

/// Everything `/flags` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlagsPanel {
    /// `GATEWAY_URL` is set: the panel can read and switch the flags.
    pub connected: bool,
    /// Why the flags could not be read (gateway unreachable, refused token, ...), when they could not.
    pub gateway_error: Option<String>,
    /// One per scenario of the catalogue, in catalogue order.
    pub scenarios: Vec<ScenarioCard>,
}

/// One scenario of the registry, with its flag and its fix action when it has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioCard {
    pub name: String,
    pub description: String,
    pub symptom: String,
    pub mechanism: String,
    pub fix: String,
    pub run_time_fix: String,
    pub seed: String,
    pub key_span: String,
    pub acted_on_by: Vec<String>,
    /// The gateway's flag; `None` for `checkout` (the default path, not a flag) and when the
    /// flags could not be read.
    pub flag: Option<Flag>,
    /// The run-time fix the panel can apply itself (inventory's), if this scenario has one.
    pub fix_action: Option<FixAction>,
}

/// A flag as the gateway reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flag {
    pub enabled: bool,
    /// Percent of requests that get the scenario while enabled.
    pub probability: u32,
}

/// A run-time fix the viewer's server can apply (at inventory-service), with its current state or
/// why it could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FixAction {
    /// `inventory.slow_query`: the index on `stock_movements(sku)`.
    SlowQueryIndex(Result<SlowQuery, String>),
    /// `kafka.consumer_lag`: messages the orders consumer processes at once.
    ConsumerConcurrency(Result<usize, String>),
}

/// inventory's `GET/PUT /admin/slow-query` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlowQuery {
    pub indexed: bool,
    pub index: String,
    pub query: String,
    /// The database's plan for the audit query.
    pub plan: Vec<String>,
}

/// What "Process N at once" sets, the registry's fix of `kafka.consumer_lag`.
pub const FIXED_CONCURRENCY: usize = 8;

/// `/search` for the gateway's root spans of `scenario` (the gateway records the decision as span
/// attribute `tracelab.scenario`).
pub fn search_href(scenario: &str) -> String {
    format!(
        "/search?service=api-gateway&operation=POST%20%2Forders&tags=tracelab.scenario%3D{}&lookback=1h",
        scenario.replace('%', "%25").replace('&', "%26")
    )
}

#[server(prefix = "/_viewer", input = Json)]
pub async fn load_flags_panel() -> Result<FlagsPanel, ServerFnError> {
    Ok(admin::panel().await)
}

/// Switches one flag at the gateway; `probability: None` keeps the gateway's share.
#[server(prefix = "/_viewer", input = Json)]
pub async fn set_flag(
    name: String,
    enabled: bool,
    probability: Option<u32>,
) -> Result<Flag, ServerFnError> {
    admin::set_flag(&name, enabled, probability)
        .await
        .map_err(ServerFnError::new)
}

/// Creates (`true`, the fix) or drops (`false`, the bug) inventory's `stock_movements` index.
#[server(prefix = "/_viewer", input = Json)]
pub async fn set_slow_query_index(indexed: bool) -> Result<SlowQuery, ServerFnError> {
    admin::inventory_put(
        "/admin/slow-query",
        serde_json::json!({ "indexed": indexed }),
    )
    .await
    .map_err(ServerFnError::new)
}

/// Sets how many messages inventory's orders consumer processes at once.
#[server(prefix = "/_viewer", input = Json)]
pub async fn set_consumer_concurrency(concurrency: usize) -> Result<usize, ServerFnError> {
    #[derive(Deserialize)]
    struct Consumer {
        concurrency: usize,
    }
    admin::inventory_put::<Consumer>(
        "/admin/consumer",
        serde_json::json!({ "concurrency": concurrency }),
    )
    .await
    .map(|c| c.concurrency)
    .map_err(ServerFnError::new)
}

#[cfg(feature = "ssr")]
pub mod admin {
    //! The client towards the services' `/admin` routes, configured once at start-up.
    use std::collections::BTreeMap;
    use std::sync::OnceLock;
    use std::time::Duration;

    use contracts::scenario::{REGISTRY, Scenario};
    use serde::de::DeserializeOwned;

    use super::{FixAction, Flag, FlagsPanel, ScenarioCard, SlowQuery};

    /// Where the services' admin routes are and the token they want.
    #[derive(Debug, Clone, Default)]
    pub struct Targets {
        pub gateway: Option<String>,
        pub inventory: Option<String>,
        pub token: Option<String>,
    }

    static TARGETS: OnceLock<Targets> = OnceLock::new();
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();

    /// Sets the targets (once, at start-up).
    pub fn configure(targets: Targets) {
        let trim = |u: Option<String>| u.map(|u| u.trim_end_matches('/').to_owned());
        let _ = TARGETS.set(Targets {
            gateway: trim(targets.gateway),
            inventory: trim(targets.inventory),
            token: targets.token,
        });
    }

    fn targets() -> &'static Targets {
        TARGETS.get_or_init(Targets::default)
    }

    /// Which service a call goes to, and the variable that names its URL.
    #[derive(Clone, Copy)]
    enum Service {
        Gateway,
        Inventory,
    }

    impl Service {
        fn base(self) -> Result<&'static str, String> {
            let (url, var) = match self {
                Service::Gateway => (&targets().gateway, "GATEWAY_URL"),
                Service::Inventory => (&targets().inventory, "INVENTORY_URL"),
            };
            url.as_deref()
                .ok_or_else(|| format!("{var} is not set: the viewer cannot reach {}", self.name()))
        }

        fn name(self) -> &'static str {
            match self {
                Service::Gateway => "api-gateway",
                Service::Inventory => "inventory-service",
            }
        }
    }

    /// `GET` (no body) or `PUT` (JSON body) `path` at `service`, with the admin token.
    async fn call<T: DeserializeOwned>(
        service: Service,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T, String> {
        let url = format!("{}{path}", service.base()?);
        let client = CLIENT.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("reqwest client")
        });
        let mut request = match &body {
            Some(b) => client.put(&url).json(b),
            None => client.get(&url),
        };
        if let Some(token) = &targets().token {
            request = request.bearer_auth(token);
        }
        let resp = request
            .send()
            .await
            .map_err(|e| format!("{} at {url} unreachable: {e}", service.name()))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| format!("reading {url}: {e}"))?;
        if !status.is_success() {
            let mut msg = format!(
                "{}: {}",
                service.name(),
                crate::api::backend::error_message(status.as_u16(), &bytes)
            );
            if status == reqwest::StatusCode::UNAUTHORIZED {
                msg.push_str(" — the viewer's ADMIN_TOKEN must be the services' ADMIN_TOKEN");
            }
            return Err(msg);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("unexpected answer from {} {path}: {e}", service.name()))
    }

    pub async fn inventory_put<T: DeserializeOwned>(
        path: &str,
        body: serde_json::Value,
    ) -> Result<T, String> {
        call(Service::Inventory, path, Some(body)).await
    }

    pub async fn set_flag(
        name: &str,
        enabled: bool,
        probability: Option<u32>,
    ) -> Result<Flag, String> {
        let mut change = serde_json::json!({ "enabled": enabled });
        if let Some(p) = probability {
            change["probability"] = p.into();
        }
        let flags: BTreeMap<String, Flag> = call(
            Service::Gateway,
            "/admin/flags",
            Some(serde_json::json!({ name: change })),
        )
        .await?;
        flags
            .get(name)
            .copied()
            .ok_or_else(|| format!("the gateway's answer has no flag {name}"))
    }

    /// The registry's texts are wrapped in the source with `\` continuations.
    fn squash(text: &str) -> String {
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    pub async fn panel() -> FlagsPanel {
        let connected = targets().gateway.is_some();
        // The gateway and inventory are asked at once.
        let (flags, slow_query, consumer) = tokio::join!(
            async {
                if connected {
                    call::<BTreeMap<String, Flag>>(Service::Gateway, "/admin/flags", None)
                        .await
                        .map(Some)
                } else {
                    Ok(None)
                }
            },
            call::<SlowQuery>(Service::Inventory, "/admin/slow-query", None),
            async {
                #[derive(serde::Deserialize)]
                struct Consumer {
                    concurrency: usize,
                }
                call::<Consumer>(Service::Inventory, "/admin/consumer", None)
                    .await
                    .map(|c| c.concurrency)
            },
        );
        let (flags, gateway_error) = match flags {
            Ok(f) => (f.unwrap_or_default(), None),
            Err(e) => (BTreeMap::new(), Some(e)),
        };
        let mut slow_query = Some(slow_query);
        let mut consumer = Some(consumer);
        let scenarios = REGISTRY
            .iter()
            .map(|info| ScenarioCard {
                name: info.name.to_owned(),
                description: squash(info.description),
                symptom: squash(info.symptom),
                mechanism: squash(info.mechanism),
                fix: squash(info.fix),
                run_time_fix: squash(info.run_time_fix),
                seed: info.seed.to_owned(),
                key_span: info.key_span.to_owned(),
                acted_on_by: info.acted_on_by.iter().map(|s| (*s).to_owned()).collect(),
                flag: flags.get(info.name).copied(),
                fix_action: match info.scenario {
                    Scenario::InventorySlowQuery => {
                        slow_query.take().map(FixAction::SlowQueryIndex)
                    }
                    Scenario::KafkaConsumerLag => {
                        consumer.take().map(FixAction::ConsumerConcurrency)
                    }
                    _ => None,
                },
            })
            .collect();
        FlagsPanel {
            connected,
            gateway_error,
            scenarios,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_link_selects_the_scenarios_root_spans() {
        assert_eq!(
            search_href("payment.slow"),
            "/search?service=api-gateway&operation=POST%20%2Forders&tags=tracelab.scenario%3Dpayment.slow&lookback=1h"
        );
        let form = crate::search::SearchForm::from_query(|k| match k {
            "service" => Some("api-gateway".into()),
            "tags" => Some("tracelab.scenario=payment.slow".into()),
            _ => None,
        });
        assert_eq!(
            crate::search::parse_tags(&form.tags).unwrap()["tracelab.scenario"],
            "payment.slow"
        );
    }

    #[cfg(feature = "ssr")]
    #[tokio::test]
    async fn without_urls_the_panel_says_so_and_lists_the_whole_catalogue() {
        // TARGETS is never configured in this test binary: no GATEWAY_URL, no INVENTORY_URL.
        let panel = admin::panel().await;
        assert!(!panel.connected);
        assert_eq!(panel.gateway_error, None);
        assert_eq!(panel.scenarios.len(), contracts::scenario::REGISTRY.len());
        let slow = panel
            .scenarios
            .iter()
            .find(|c| c.name == "inventory.slow_query")
            .unwrap();
        assert!(slow.flag.is_none());
        match &slow.fix_action {
            Some(FixAction::SlowQueryIndex(Err(e))) => {
                assert!(e.contains("INVENTORY_URL is not set"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        assert!(
            !panel.scenarios[0].description.contains("  "),
            "no source wrapping"
        );
        assert!(
            admin::set_flag("payment.slow", true, None)
                .await
                .unwrap_err()
                .contains("GATEWAY_URL is not set")
        );
    }
}
