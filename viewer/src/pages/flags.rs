//! `/flags`: the scenario flags panel, the workshop's break it / see it / fix it loop without a
//! terminal. One card per scenario of the catalogue (what happens, the symptom, the mechanism, the
//! fix), with the gateway's flag for it (enabled, probability, Apply), inventory's run-time fixes
//! as buttons where the scenario has one, and a link to the traces that ran it. Every change goes
//! through the viewer's server functions ([`crate::flags`]); the card shows what the service
//! answered, not what was asked.

use leptos::prelude::*;

use crate::flags::{
    FIXED_CONCURRENCY, FixAction, Flag, FlagsPanel, ScenarioCard, SlowQuery, load_flags_panel,
    search_href, set_consumer_concurrency, set_flag, set_slow_query_index,
};

#[component]
pub fn FlagsPage() -> impl IntoView {
    let panel = Resource::new(|| (), |_| load_flags_panel());
    view! {
        <div class="flags-page">
            <h1>"Scenario flags"</h1>
            <p class="notice">
                "Break it: switch a scenario on for a share of the checkouts. See it: open the traces that ran it. \
                 Fix it: apply the fix at run time and watch the next trace change."
            </p>
            <Suspense fallback=|| view! { <p class="notice">"Reading the flags…"</p> }>
                {move || Suspend::new(async move {
                    match panel.await {
                        Ok(p) => view! { <Panel panel=p/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{format!("The flags panel: {e}")}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </div>
    }
}

#[component]
fn Panel(panel: FlagsPanel) -> impl IntoView {
    let banner = if !panel.connected {
        Some(view! {
            <p class="notice not-connected" id="flags-not-connected" role="status">
                "The flags panel is not connected: the viewer has no GATEWAY_URL. Start it with GATEWAY_URL \
                 (and INVENTORY_URL, ADMIN_TOKEN) set — `tracelab up` does — to switch the flags from here."
            </p>
        }
        .into_any())
    } else {
        panel.gateway_error.map(|e| {
            view! { <p class="error" role="alert" id="flags-error">{format!("Cannot read the flags: {e}")}</p> }
                .into_any()
        })
    };
    let connected = panel.connected;
    view! {
        {banner}
        <div class="scenario-cards">
            {panel.scenarios.into_iter().map(|card| view! { <Card card connected/> }).collect_view()}
        </div>
    }
}

/// `on · 25 %` / `off`.
fn flag_text(f: &Flag) -> String {
    if f.enabled {
        format!("on · {} %", f.probability)
    } else {
        "off".to_owned()
    }
}

#[component]
fn Card(card: ScenarioCard, connected: bool) -> impl IntoView {
    // Effects run only in the browser: the attribute tells a test the card's handlers are live.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let name = card.name.clone();
    let acted = if card.acted_on_by.is_empty() {
        "—".to_owned()
    } else {
        card.acted_on_by.join(", ")
    };
    let flag_controls = card
        .flag
        .map(|f| view! { <FlagControls name=name.clone() initial=f/> });
    let not_a_flag = (card.flag.is_none() && name == "checkout")
        .then(|| view! { <p class="notice">"The default path: every request without a flag or header runs it."</p> });
    let fix = card.fix_action.map(|a| match a {
        FixAction::SlowQueryIndex(state) => view! { <SlowQueryFix state/> }.into_any(),
        FixAction::ConsumerConcurrency(state) => view! { <ConsumerFix state/> }.into_any(),
    });
    let href = search_href(&name);
    view! {
        <section class="scenario-card" data-scenario=name.clone() data-hydrated=move || hydrated.get().to_string()>
            <header>
                <h2>{name.clone()}</h2>
                <a class="see-it" href=href>"See it: traces of "{name.clone()}" →"</a>
            </header>
            <p class="description">{card.description}</p>
            <dl class="scenario-facts">
                <dt>"Symptom"</dt><dd>{card.symptom}</dd>
                <dt>"Mechanism"</dt><dd>{card.mechanism}</dd>
                <dt>"Fix"</dt><dd>{card.fix}</dd>
                <dt>"Run-time fix"</dt><dd>{card.run_time_fix}</dd>
                <dt>"Key span"</dt><dd><code>{card.key_span}</code></dd>
                <dt>"Seed"</dt><dd>{card.seed}</dd>
                <dt>"Acted on by"</dt><dd>{acted}</dd>
            </dl>
            {flag_controls}
            {(connected && card.flag.is_none() && name != "checkout")
                .then(|| view! { <p class="notice">"No flag read for it."</p> })}
            {not_a_flag}
            {fix}
        </section>
    }
}

/// Enabled + probability + Apply; the state line shows the gateway's answer.
#[component]
fn FlagControls(name: String, initial: Flag) -> impl IntoView {
    let current = RwSignal::new(initial);
    let enabled = RwSignal::new(initial.enabled);
    let probability = RwSignal::new(initial.probability.to_string());
    let message = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let apply = move |_| {
        let text = probability.get_untracked();
        // An empty box keeps the gateway's share (the PUT leaves `probability` out).
        let share = match text.trim() {
            "" => None,
            t => match t.parse::<u32>() {
                Ok(p) if p <= 100 => Some(p),
                _ => {
                    message.set(Some(format!("{t:?} is not a percentage 0-100")));
                    return;
                }
            },
        };
        let name = name.clone();
        let on = enabled.get_untracked();
        busy.set(true);
        leptos::task::spawn_local(async move {
            match set_flag(name, on, share).await {
                Ok(f) => {
                    current.set(f);
                    enabled.set(f.enabled);
                    probability.set(f.probability.to_string());
                    message.set(None);
                }
                Err(e) => message.set(Some(e.to_string())),
            }
            busy.set(false);
        });
    };
    view! {
        <div class="flag-controls">
            <span class="flag-state" class:on=move || current.get().enabled>{move || flag_text(&current.get())}</span>
            <label class="check">
                <input type="checkbox" class="flag-enabled"
                    prop:checked=move || enabled.get()
                    on:change=move |ev| enabled.set(event_target_checked(&ev))/>
                "Enabled"
            </label>
            <label>
                <input type="number" class="flag-probability" min="0" max="100" step="1"
                    prop:value=move || probability.get()
                    on:input=move |ev| probability.set(event_target_value(&ev))/>
                " % of checkouts"
            </label>
            <button class="flag-apply" disabled=move || busy.get() on:click=apply>"Apply"</button>
            {move || message.get().map(|m| view! { <span class="error flag-message" role="alert">{m}</span> })}
        </div>
    }
}

/// A fix's state as the service last reported it, the error of the last call (or of reading it),
/// and whether a call is under way.
struct FixState<T: Send + Sync + 'static> {
    current: RwSignal<Option<T>>,
    message: RwSignal<Option<String>>,
    busy: RwSignal<bool>,
}

impl<T: Send + Sync + 'static> Clone for FixState<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: Send + Sync + 'static> Copy for FixState<T> {}

impl<T: Clone + Send + Sync + 'static> FixState<T> {
    fn new(state: Result<T, String>) -> Self {
        let (current, message) = match state {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        };
        Self {
            current: RwSignal::new(current),
            message: RwSignal::new(message),
            busy: RwSignal::new(false),
        }
    }

    /// Runs `call` (a server function) and shows the service's answer, or the error.
    fn apply(self, call: impl std::future::Future<Output = Result<T, ServerFnError>> + 'static) {
        self.busy.set(true);
        leptos::task::spawn_local(async move {
            match call.await {
                Ok(v) => {
                    self.current.set(Some(v));
                    self.message.set(None);
                }
                Err(e) => self.message.set(Some(e.to_string())),
            }
            self.busy.set(false);
        });
    }

    fn error_view(self) -> impl IntoView {
        move || {
            self.message
                .get()
                .map(|m| view! { <p class="error fix-message" role="alert">{m}</p> })
        }
    }
}

/// inventory's index: its state, the plan, and the button that flips it.
#[component]
fn SlowQueryFix(state: Result<SlowQuery, String>) -> impl IntoView {
    let reachable = state.is_ok();
    let fix = FixState::new(state);
    let flip = move |_| {
        if let Some(s) = fix.current.get_untracked() {
            fix.apply(set_slow_query_index(!s.indexed));
        }
    };
    view! {
        <div class="fix-action slow-query">
            <h3>"Fix it at inventory-service"</h3>
            {move || fix.current.get().map(|s| {
                let state = if s.indexed { "present: the audit query searches the index" } else { "absent: the audit query scans the table" };
                view! {
                    <p class="fix-state" data-indexed=s.indexed.to_string()>
                        "Index "<code>{s.index.clone()}</code>": "{state}
                    </p>
                    <pre class="plan">{s.plan.join("\n")}</pre>
                }
            })}
            {reachable.then(|| view! {
                <button class="fix-apply" id="slow-query-fix" disabled=move || fix.busy.get() on:click=flip>
                    {move || if fix.current.get().is_some_and(|s| s.indexed) { "Drop the index" } else { "Add the index" }}
                </button>
            })}
            {fix.error_view()}
        </div>
    }
}

/// inventory's consumer concurrency: one at a time (the bug) or [`FIXED_CONCURRENCY`].
#[component]
fn ConsumerFix(state: Result<usize, String>) -> impl IntoView {
    let reachable = state.is_ok();
    let fix = FixState::new(state);
    let flip = move |_| {
        if let Some(now) = fix.current.get_untracked() {
            fix.apply(set_consumer_concurrency(if now == 1 {
                FIXED_CONCURRENCY
            } else {
                1
            }));
        }
    };
    view! {
        <div class="fix-action consumer">
            <h3>"Fix it at inventory-service"</h3>
            {move || fix.current.get().map(|c| view! {
                <p class="fix-state" data-concurrency=c.to_string()>
                    {format!("The orders consumer processes {c} message{} at once", if c == 1 { "" } else { "s" })}
                </p>
            })}
            {reachable.then(|| view! {
                <button class="fix-apply" id="consumer-fix" disabled=move || fix.busy.get() on:click=flip>
                    {move || if fix.current.get() == Some(1) { format!("Process {FIXED_CONCURRENCY} at once") } else { "Back to one at a time".to_owned() }}
                </button>
            })}
            {fix.error_view()}
        </div>
    }
}
