//! The search page: Jaeger UI's form (service, operation, tags, durations, errors only, lookback
//! or range, limit), a scatter plot of the results (time × duration, errors red, click to open)
//! and the result list from `/api/v1/traces` summaries. Rendered on the server; after hydration,
//! picking a service loads its operations without a page load.

use collector_api::v1::TraceSummary;
use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::api::{list_operations, list_services, search_traces};
use crate::format;
use crate::model::service_colour;
use crate::pages::compare::{CompareBar, Picked, pick_box};
use crate::search::{LOOKBACKS, SearchForm};

#[component]
pub fn SearchPage() -> impl IntoView {
    let query = use_query_map();
    let form = Memo::new(move |_| {
        let q = query.read();
        SearchForm::from_query(|k| q.get(k))
    });
    let initial = form.get_untracked();
    let (service, set_service) = signal(initial.service.clone());
    let services = Resource::new(|| (), |_| list_services());
    let operations = Resource::new(move || service.get(), list_operations);
    let results = Resource::new(move || form.get(), search_traces);
    // Traces ticked for comparing; a new search starts a new selection.
    let picked: Picked = RwSignal::new(Vec::new());
    Effect::new(move |_| {
        form.track();
        picked.set(Vec::new());
    });

    let f = initial;
    let op_selected = f.operation.clone();
    let svc_selected = f.service.clone();
    let lookback = f.lookback_or_default().to_string();

    view! {
        <div class="search-layout">
            <aside class="search-form">
                <form method="get" action="/search">
                    <label>"Service"
                        <Suspense fallback=|| view! { <select name="service" disabled=true><option>"Loading…"</option></select> }>
                            {move || {
                                let svc_selected = svc_selected.clone();
                                Suspend::new(async move {
                                    let list = services.await.unwrap_or_default();
                                    view! {
                                        <select name="service" id="service"
                                            on:change=move |ev| set_service.set(event_target_value(&ev))>
                                            <option value="">"All services"</option>
                                            {list.into_iter().map(|s| {
                                                let sel = s == svc_selected;
                                                view! { <option value=s.clone() selected=sel>{s.clone()}</option> }
                                            }).collect_view()}
                                        </select>
                                    }
                                })
                            }}
                        </Suspense>
                    </label>
                    <label>"Operation"
                        <Suspense fallback=|| view! { <select name="operation" disabled=true><option>"Loading…"</option></select> }>
                            {move || {
                                let op_selected = op_selected.clone();
                                Suspend::new(async move {
                                    let ops = operations.await.unwrap_or_default();
                                    let n = ops.len();
                                    view! {
                                        <select name="operation" id="operation" data-count=n>
                                            <option value="">"All operations"</option>
                                            {ops.into_iter().map(|o| {
                                                let sel = o == op_selected;
                                                view! { <option value=o.clone() selected=sel>{o.clone()}</option> }
                                            }).collect_view()}
                                        </select>
                                    }
                                })
                            }}
                        </Suspense>
                    </label>
                    <label>"Tags"
                        <input name="tags" id="tags" value=f.tags.clone()
                            placeholder="http.response.status_code=402 error=true" spellcheck="false"/>
                    </label>
                    <div class="pair">
                        <label>"Min duration"
                            <input name="minDuration" id="minDuration" value=f.min_duration.clone() placeholder="100ms"/>
                        </label>
                        <label>"Max duration"
                            <input name="maxDuration" id="maxDuration" value=f.max_duration.clone() placeholder="1.2s"/>
                        </label>
                    </div>
                    <label class="check">
                        <input type="checkbox" name="errors" value="on" checked=f.errors_only/>
                        "Errors only"
                    </label>
                    <label>"Lookback"
                        <select name="lookback">
                            {LOOKBACKS.iter().map(|(v, label)| {
                                let sel = *v == lookback;
                                view! { <option value=*v selected=sel>{*label}</option> }
                            }).collect_view()}
                        </select>
                    </label>
                    <div class="pair">
                        <label>"Start (µs)"<input name="start" value=f.start.clone() placeholder="custom only"/></label>
                        <label>"End (µs)"<input name="end" value=f.end.clone() placeholder="custom only"/></label>
                    </div>
                    <label>"Limit"
                        <input name="limit" type="number" min="1" max="1500" value=f.limit.clone() placeholder="20"/>
                    </label>
                    <button type="submit" id="find">"Find traces"</button>
                </form>
            </aside>
            <section class="results">
                <Suspense fallback=|| view! { <p class="notice">"Searching…"</p> }>
                    {move || Suspend::new(async move {
                        match results.await {
                            Ok(r) if r.data.is_empty() => view! {
                                <p class="notice">"No traces match. Place an order (curl the gateway, or run the load generator) or widen the lookback."</p>
                            }.into_any(),
                            Ok(r) => {
                                let n = r.data.len();
                                view! {
                                    <Scatter traces=r.data.clone()/>
                                    <h2 class="count">{format!("{n} trace{}", if n == 1 { "" } else { "s" })}</h2>
                                    <CompareBar picked/>
                                    <ol class="result-list">
                                        {r.data.into_iter().map(|t| view! { <ResultItem t picked/> }).collect_view()}
                                    </ol>
                                }.into_any()
                            }
                            Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
                        }
                    })}
                </Suspense>
            </section>
        </div>
    }
}

/// A server function's error as the user should read it.
pub fn error_text(e: &ServerFnError) -> String {
    match e {
        ServerFnError::ServerError(m) => m.clone(),
        other => other.to_string(),
    }
}

#[component]
fn ResultItem(t: TraceSummary, picked: Picked) -> impl IntoView {
    let href = format!("/trace/{}", t.trace_id);
    let title = if t.root_service.is_empty() {
        "(root span not received)".to_string()
    } else {
        format!("{}: {}", t.root_service, t.root_operation)
    };
    let errors = t.error_count;
    view! {
        <li class="result" class:has-error={errors > 0} data-trace-id=t.trace_id.clone()>
            <a class="result-link" href=href>
                <span class="result-title">
                    <span class="chip" style:background=service_colour(&t.root_service)></span>
                    {title}
                </span>
                <span class="result-duration">{format::duration_us(t.duration)}</span>
            </a>
            <div class="result-meta">
                {pick_box(picked, t.start_time, t.trace_id.clone())}
                <span>{format!("{} spans", t.span_count)}</span>
                {(errors > 0).then(|| view! { <span class="errors">{format!("{errors} errors")}</span> })}
                <span>{format::timestamp_us(t.start_time)}</span>
                <code>{t.trace_id.chars().take(12).collect::<String>()}</code>
            </div>
            <div class="pills">
                {t.services.iter().map(|s| view! {
                    <span class="pill" style:border-color=service_colour(&s.service)>
                        {format!("{} ({})", s.service, s.span_count)}
                    </span>
                }).collect_view()}
            </div>
        </li>
    }
}

/// Start time × duration of every result; red when the trace has errors. Clicking opens it.
#[component]
fn Scatter(traces: Vec<TraceSummary>) -> impl IntoView {
    const W: f64 = 1000.0;
    const H: f64 = 170.0;
    // Left margin for the duration labels, right margin for the last dot.
    const LEFT: f64 = 64.0;
    const RIGHT: f64 = 16.0;
    let t0 = traces.iter().map(|t| t.start_time).min().unwrap_or(0);
    let t1 = traces.iter().map(|t| t.start_time).max().unwrap_or(0);
    let dmax = traces.iter().map(|t| t.duration).max().unwrap_or(1).max(1);
    let x = move |t: u64| {
        if t1 == t0 {
            (LEFT + W - RIGHT) / 2.0
        } else {
            LEFT + (t - t0) as f64 / (t1 - t0) as f64 * (W - LEFT - RIGHT)
        }
    };
    let y = move |d: u64| H - 18.0 - d as f64 / dmax as f64 * (H - 34.0);
    let navigate = use_navigate();
    view! {
        <svg class="scatter" viewBox=format!("0 0 {W} {H}") role="img" aria-label="Trace durations over time">
            <line x1=LEFT y1=H - 18.0 x2=W - RIGHT y2=H - 18.0 class="axis"/>
            <line x1=LEFT y1=10.0 x2=LEFT y2=H - 18.0 class="axis"/>
            <text x=LEFT y=H - 4.0 class="tick">{format::clock_us(t0)}</text>
            <text x=W - RIGHT y=H - 4.0 class="tick" text-anchor="end">{format::clock_us(t1)}</text>
            <text x=LEFT - 6.0 y=20.0 class="tick" text-anchor="end">{format::duration_us(dmax)}</text>
            <text x=LEFT - 6.0 y=H - 18.0 class="tick" text-anchor="end">"0"</text>
            {traces.into_iter().map(|t| {
                let href = format!("/trace/{}", t.trace_id);
                let nav = navigate.clone();
                let r = 3.0 + (t.span_count as f64).log10().clamp(0.0, 4.0) * 1.5;
                let tip = format!("{}: {} — {}", t.root_service, t.root_operation, format::duration_us(t.duration));
                view! {
                    <circle cx=x(t.start_time) cy=y(t.duration) r=r class="dot" class:err={t.error_count > 0}
                        data-trace-id=t.trace_id.clone()
                        on:click=move |_| nav(&href, Default::default())>
                        <title>{tip}</title>
                    </circle>
                }
            }).collect_view()}
        </svg>
    }
}
