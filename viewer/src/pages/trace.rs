//! The trace page: header facts, the bottleneck sentence, badges (incomplete trace, detached
//! fragments, the sampling decision), a virtualised waterfall with the critical path drawn on it,
//! the span panel (with the span's log records) and a trace-wide Logs tab (`?tab=logs`).
//!
//! The collector keeps the trace's tree: the header comes from `/api/v1/traces/{id}/overview`
//! and the waterfall's rows from `/api/v1/traces/{id}/tree` in windows of [`WINDOW_ROWS`] around
//! the scroll position, so a 100,000-span trace opens and scrolls without the browser ever
//! holding more than a few hundred spans. Collapsing a row asks the collector again with the new
//! collapse state; a collapsed row shows what it hides (`+ 4,999 spans, 12 errors, 830ms`).
//!
//! The page loads in the browser (`LocalResource`s): the server sends the frame, the browser
//! fetches the rows, so a huge trace is never inlined into the HTML.

use std::collections::HashSet;
use std::sync::Arc;

use collector_api::tree::{SEVERITY_LEVELS, TraceOverview, TreeRow, TreeWindow, severity_level};
use collector_api::v1::{Decision, LogRecord, SamplingDecision, TraceSummary};
use collector_api::{Process, RefType};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::NavigateOptions;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};

use crate::api::{
    find_sampling_decision, load_logs, load_overview, load_tree_spans, load_tree_window,
    traces_between,
};
use crate::format;
use crate::model::{Collapse, RowWindow, hidden_text, service_colour, service_name, window_offset};
use crate::pages::search::error_text;

/// Pixel height of one waterfall row (CSS `.row` and `.cmp-row` use the same).
pub(crate) const ROW_H: f64 = 26.0;
/// Rows rendered above and below the viewport.
const OVERSCAN: u64 = 12;
/// Rows one tree window asks for (the collector allows 2,000).
pub const WINDOW_ROWS: u64 = 300;
#[component]
pub fn TracePage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let trace_id = Memo::new(move |_| params.read().get("id").unwrap_or_default());
    let selected = Memo::new(move |_| query.read().get("span"));
    let logs_tab = Memo::new(move |_| query.read().get("tab").as_deref() == Some("logs"));
    // Both requests go out at once; the collector builds the trace's tree for the first to
    // arrive and serves the other from it.
    let first = LocalResource::new(move || {
        load_tree_window(
            trace_id.get(),
            Collapse::default().request(0, WINDOW_ROWS, None),
        )
    });
    let overview = LocalResource::new(move || load_overview(trace_id.get()));
    view! {
        <Suspense fallback=|| view! { <p class="notice" id="loading">"Loading trace…"</p> }>
            {move || Suspend::new(async move {
                let (o, w) = (overview.await, first.await);
                match o.and_then(|o| w.map(|w| (o, w))) {
                    Ok((o, w)) => view! { <TraceView overview=Arc::new(o) first=w selected logs_tab/> }.into_any(),
                    Err(e) => view! {
                        <p class="error" role="alert">{format!("Trace {}: {}", trace_id.get_untracked(), error_text(&e))}</p>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The first and one-past-last visible positions to draw for a scroll position (the trace page's
/// waterfall and the compare page's rows).
pub(crate) fn drawn_range(top: f64, height: f64, total: u64) -> (u64, u64) {
    let first = ((top / ROW_H) as u64).saturating_sub(OVERSCAN);
    let last = (((top + height) / ROW_H).ceil() as u64 + OVERSCAN).min(total);
    (first.min(last), last)
}

#[component]
fn TraceView(
    overview: Arc<TraceOverview>,
    first: TreeWindow,
    selected: Memo<Option<String>>,
    logs_tab: Memo<bool>,
) -> impl IntoView {
    let trace_id = overview.trace_id.clone();
    let collapse = RwSignal::new(Collapse::default());
    let total = RwSignal::new(first.total_rows);
    let held = RwSignal::new(RowWindow::new(0, first));
    // The (version, offset) of the window being fetched, so scrolling does not pile requests.
    let pending = RwSignal::new(None::<(u64, u64)>);
    let failure = RwSignal::new(None::<String>);
    let scroll_top = RwSignal::new(0.0f64);
    let viewport = RwSignal::new(700.0f64);
    let scroller = NodeRef::<leptos::html::Div>::new();
    let navigate = use_navigate();
    let (t0, t1) = (overview.trace_start_time, overview.trace_end_time);

    // The viewport's height: the scroller is never taller than the window; its own height may
    // read 0 before layout.
    Effect::new(move |_| {
        let h = window()
            .inner_height()
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(900.0);
        viewport.set(h);
    });

    // Fetches the window around the rows in view whenever they are not all held.
    {
        let trace_id = trace_id.clone();
        Effect::new(move |_| {
            let c = collapse.get();
            let n = total.get();
            let (first, last) = drawn_range(scroll_top.get(), viewport.get(), n);
            if held.with(|w| w.covers(c.version, first, last, n)) {
                return;
            }
            let offset = window_offset(first, last, n, WINDOW_ROWS);
            if let Some((v, o)) = pending.get_untracked()
                && v == c.version
                && first >= o
                && last <= o + WINDOW_ROWS
            {
                return;
            }
            pending.set(Some((c.version, offset)));
            let req = c.request(offset, WINDOW_ROWS, None);
            let (id, version) = (trace_id.clone(), c.version);
            spawn_local(async move {
                let answer = load_tree_window(id, req).await;
                if collapse.with_untracked(|c| c.version) != version {
                    return; // the collapse state moved on; its own fetch is coming
                }
                pending.set(None);
                match answer {
                    Ok(w) => {
                        total.set(w.total_rows);
                        held.set(RowWindow::new(version, w));
                        failure.set(None);
                    }
                    Err(e) => failure.set(Some(error_text(&e))),
                }
            });
        });
    }

    // A span chosen by URL (a link, a reload) that is not among the rows held is revealed: the
    // collector says where it is and which collapsed ancestors hide it; they open and it is
    // scrolled to.
    {
        let trace_id = trace_id.clone();
        Effect::new(move |_| {
            let Some(span) = selected.get() else { return };
            if let Some(pos) = held.with_untracked(|w| w.position_of(&span)) {
                scroll_into_view(scroller, scroll_top, pos);
                return;
            }
            let c = collapse.get_untracked();
            let req = c.request(0, 1, Some(span));
            let id = trace_id.clone();
            spawn_local(async move {
                let Ok(w) = load_tree_window(id, req).await else {
                    return;
                };
                let Some(r) = w.revealed else { return };
                if collapse.with_untracked(|now| now.version) != c.version {
                    return;
                }
                collapse.update(|c| c.open(&r.opened));
                total.set(w.total_rows);
                // After the rows container has its new height.
                leptos::leptos_dom::helpers::request_animation_frame(move || {
                    scroll_into_view(scroller, scroll_top, r.row);
                });
            });
        });
    }

    let select = {
        let navigate = navigate.clone();
        let trace_id = trace_id.clone();
        move |span_id: String| {
            navigate(
                &format!("/trace/{trace_id}?span={span_id}"),
                NavigateOptions {
                    replace: true,
                    scroll: false,
                    ..Default::default()
                },
            );
        }
    };
    let close = {
        let trace_id = trace_id.clone();
        move || {
            navigate(
                &format!("/trace/{trace_id}"),
                NavigateOptions {
                    replace: true,
                    scroll: false,
                    ..Default::default()
                },
            )
        }
    };

    let rows_view = move || {
        let n = total.get();
        let (first, last) = drawn_range(scroll_top.get(), viewport.get(), n);
        let sel = selected.get();
        held.with(|w| {
            (first..last)
                .filter_map(|pos| {
                    let r = w.get(pos)?;
                    let is_sel = sel.as_deref() == Some(r.span.span_id.as_str());
                    Some(row(w, r, pos, t0, t1, is_sel, collapse, select.clone()))
                })
                .collect_view()
        })
    };

    let dur = t1.saturating_sub(t0).max(1);
    let tab_link = |logs: bool, label: &'static str, id: &'static str| {
        let href = if logs {
            format!("/trace/{trace_id}?tab=logs")
        } else {
            format!("/trace/{trace_id}")
        };
        view! {
            <a id=id href=href class="tab" class:active=move || logs_tab.get() == logs>{label}</a>
        }
    };
    let waterfall = view! {
        <section class="waterfall" aria-label="Waterfall">
            <div class="ruler">
                <div class="ruler-label">
                    <button class="link" id="expand-all" on:click=move |_| collapse.update(Collapse::expand_all)>"Expand all"</button>
                    " · "
                    <button class="link" id="collapse-all" on:click=move |_| collapse.update(Collapse::collapse_all)>"Collapse all"</button>
                    <span class="row-count" id="row-count" data-rows=move || total.get().to_string()>
                        {move || format!(" · {} rows", crate::model::thousands(total.get()))}
                    </span>
                </div>
                <div class="ruler-ticks">
                    {(0..=4).map(|k| {
                        let d = dur * k / 4;
                        view! {
                            <span class="tick" style:left=format!("{}%", k * 25)>{if k == 0 { "0".to_string() } else { format::duration_us(d) }}</span>
                        }
                    }).collect_view()}
                </div>
            </div>
            {move || failure.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <div class="scroller" id="waterfall" node_ref=scroller
                on:scroll=move |_| {
                    if let Some(el) = scroller.get_untracked() {
                        scroll_top.set(f64::from(el.scroll_top()));
                        let h = f64::from(el.client_height());
                        if h > ROW_H {
                            viewport.set(h);
                        }
                    }
                }>
                <div class="rows" style:height=move || format!("{}px", total.get() as f64 * ROW_H)>
                    {rows_view}
                </div>
            </div>
        </section>
    };
    let panel_trace = trace_id.clone();
    let logs_trace = trace_id.clone();
    view! {
        <div class="trace-page" data-trace-id=trace_id.clone()>
            <TraceHeader overview=overview.clone()/>
            <nav class="tabs" aria-label="Trace views">
                {tab_link(false, "Waterfall", "tab-waterfall")}
                {tab_link(true, "Logs", "tab-logs")}
            </nav>
            <div class="trace-body" class:hidden=move || logs_tab.get()>
                {waterfall}
                {move || selected.get().map(|span| {
                    let close = close.clone();
                    view! { <SpanPanel trace_id=panel_trace.clone() span_id=span trace_start=t0 on_close=move || close()/> }
                })}
            </div>
            {move || logs_tab.get().then(|| view! { <LogsTab trace_id=logs_trace.clone() trace_start=t0/> })}
        </div>
    }
}

/// Scrolls the waterfall so visible row `pos` is in view (a third from the top when it moves).
fn scroll_into_view(scroller: NodeRef<leptos::html::Div>, scroll_top: RwSignal<f64>, pos: u64) {
    let Some(el) = scroller.get_untracked() else {
        return;
    };
    let y = pos as f64 * ROW_H;
    let top = f64::from(el.scroll_top());
    let h = f64::from(el.client_height());
    if y < top || y + ROW_H > top + h {
        let to = (y - h / 3.0).max(0.0);
        el.set_scroll_top(to as i32);
        scroll_top.set(to);
    }
}

fn pct(v: u64, of: u64) -> String {
    format!("{:.4}%", v as f64 * 100.0 / of.max(1) as f64)
}

#[allow(clippy::too_many_arguments)]
fn row(
    w: &RowWindow,
    r: &TreeRow,
    pos: u64,
    t0: u64,
    t1: u64,
    is_selected: bool,
    collapse: RwSignal<Collapse>,
    select: impl Fn(String) + Clone + 'static,
) -> AnyView {
    let s = &r.span;
    let service = w.service(r).to_string();
    let colour = service_colour(&service);
    let dur = t1.saturating_sub(t0).max(1);
    let offset = s.start_time.saturating_sub(t0);
    let width = s.duration.max(dur / 2000);
    // The duration label goes after the bar; near the right edge, inside a wide bar or before a
    // narrow one, so it never runs off the timeline or over another colour unreadably.
    let (start_pct, end_pct) = (
        offset as f64 / dur as f64 * 100.0,
        (offset + width) as f64 / dur as f64 * 100.0,
    );
    let (label_class, label_style) = format::bar_label(start_pct, end_pct, 88.0, 10.0);
    let on_critical = !r.critical.is_empty();
    let crit: Vec<(String, String)> = r
        .critical
        .iter()
        .map(|&[a, b]| {
            (
                pct(a.saturating_sub(t0), dur),
                pct(b.saturating_sub(a).max(dur / 4000), dur),
            )
        })
        .collect();
    let span_id = s.span_id.clone();
    let is_collapsed = r.collapsed;
    let toggle = if r.child_count > 0 {
        let id = span_id.clone();
        view! {
            <button class="toggle" aria-label=if is_collapsed { "expand" } else { "collapse" }
                aria-expanded=(!is_collapsed).to_string()
                on:click=move |ev| {
                    ev.stop_propagation();
                    collapse.update(|c| c.toggle(&id, is_collapsed));
                }>
                {if is_collapsed { "▸" } else { "▾" }}
            </button>
        }
        .into_any()
    } else {
        view! { <span class="toggle-space"></span> }.into_any()
    };
    let hidden = r.hidden.as_ref().map(hidden_text);
    let error = s.is_error();
    view! {
        <div class="row" class:selected=is_selected class:error=error class:critical=on_critical
            class:collapsed=is_collapsed
            style:top=format!("{}px", pos as f64 * ROW_H)
            data-span-id=span_id.clone() data-operation=s.operation_name.clone() data-pos=pos.to_string()
            on:click=move |_| select(span_id.clone())>
            <div class="row-label" style:padding-left=format!("{}px", 4 + r.depth.min(40) * 12)>
                {toggle}
                <span class="chip" style:background=colour></span>
                <span class="svc">{service}</span>
                <span class="op">{s.operation_name.clone()}</span>
                {error.then(|| view! { <span class="err-mark" title="error">"!"</span> })}
                {hidden.map(|h| view! { <span class="hidden-summary">{h}</span> })}
            </div>
            <div class="row-timeline">
                <div class="bar" style:left=pct(offset, dur) style:width=pct(width, dur) style:background=colour></div>
                {crit.into_iter().map(|(l, w)| view! { <div class="crit" style:left=l style:width=w></div> }).collect_view()}
                <span class=label_class style=label_style>{format::duration_us(s.duration)}</span>
            </div>
        </div>
    }
    .into_any()
}

#[component]
fn TraceHeader(overview: Arc<TraceOverview>) -> impl IntoView {
    let o = &overview;
    let root = o.root.as_ref().map(|r| &r.span);
    let root_service = root
        .map(|r| service_name(&o.processes, r).to_string())
        .unwrap_or_default();
    let title = root.map_or_else(
        || "(no spans)".to_string(),
        |r| format!("{root_service}: {}", r.operation_name),
    );
    let root_duration = root.map_or(0, |r| r.duration);
    let bottleneck = o.bottleneck.clone();
    let missing = o.missing_parents;
    let policy = root
        .and_then(|r| {
            r.tag_str("tailsampling.policy")
                .or_else(|| r.tag_str("tracelab.sampling.policy"))
        })
        .map(str::to_string);
    let trace_id = o.trace_id.clone();
    let decision = {
        let trace_id = trace_id.clone();
        LocalResource::new(move || find_sampling_decision(trace_id.clone()))
    };
    let (lo, hi) = (o.trace_start_time, o.trace_end_time);
    let neighbours =
        LocalResource::new(move || traces_between(lo.saturating_sub(1_000), hi + 1_000));
    let fo = overview.clone();
    view! {
        <section class="trace-head">
            <h1>
                <span class="chip" style:background=service_colour(&root_service)></span>
                <span id="trace-title">{title}</span>
                <code class="trace-id">{trace_id.clone()}</code>
            </h1>
            <dl class="facts">
                <div><dt>"Start"</dt><dd>{format::timestamp_us(lo)}</dd></div>
                <div><dt>"Duration"</dt><dd id="trace-duration">{format::duration_us(hi.saturating_sub(lo))}</dd></div>
                <div><dt>"Services"</dt><dd>{o.services.len()}</dd></div>
                <div><dt>"Depth"</dt><dd>{o.max_depth + 1}</dd></div>
                <div><dt>"Spans"</dt><dd id="span-count">{o.span_count}</dd></div>
                <div><dt>"Errors"</dt><dd class:errors={o.error_count > 0}>{o.error_count}</dd></div>
            </dl>
            <div class="services-legend">
                {o.services.iter().map(|s| view! {
                    <span class="pill" style:border-color=service_colour(&s.service)>{s.service.clone()}</span>
                }).collect_view()}
            </div>
            {bottleneck.map(|b| {
                let href = format!("/trace/{}?span={}", trace_id, b.span_id);
                view! {
                    <p class="bottleneck" id="bottleneck">
                        <strong>"Bottleneck: "</strong>
                        <a href=href>{b.sentence()}</a>
                        <span class="hint">{format!(" of the critical path through a {} request", format::duration_us(root_duration))}</span>
                    </p>
                }
            })}
            <div class="badges">
                {(missing > 0).then(|| view! {
                    <span class="badge warn" id="incomplete" title="Spans whose parent span is not in this trace: it never arrived, was sampled away, or the context was broken.">
                        {format!("Incomplete trace: {missing} span{} point{} to a missing parent", if missing == 1 { "" } else { "s" }, if missing == 1 { "s" } else { "" })}
                    </span>
                })}
                // Their own Suspense boundaries: the page's waits only for the rows, not for these
                // (a search over the trace's time range can take a second in a busy store).
                <Suspense fallback=|| ()>
                    <span class="badge sampling" id="sampling">
                        {move || sampling_text(policy.clone(), decision.get().and_then(|d| d.ok()).flatten())}
                    </span>
                </Suspense>
            </div>
            <Suspense fallback=|| ()>
                {move || neighbours.get().and_then(|r| r.ok()).map(|others| fragment_hints(&fo, &others))}
            </Suspense>
        </section>
    }
}

fn sampling_text(policy: Option<String>, decision: Option<SamplingDecision>) -> String {
    match (policy, decision) {
        (_, Some(d)) => {
            let verdict = match d.decision {
                Decision::Sampled => "kept",
                Decision::NotSampled => "dropped",
            };
            match d.policy {
                Some(p) => format!("Sampling: {verdict} by tail-sampling policy {p}"),
                None => format!("Sampling: {verdict} by tail sampling (no policy matched)"),
            }
        }
        (Some(p), None) => format!("Sampling: kept by tail-sampling policy {p}"),
        (None, None) => "Sampling: kept — no sampling".to_string(),
    }
}

/// Other traces that are probably this one's missing halves: a root, in a service absent from this
/// trace, that began while one of our leaf calls ran (the call lost its context), or —
/// when our root is a SERVER span — a trace that was running when we began and lacks our service.
/// The leaf calls are the overview's (the shortest [`collector_api::tree::MAX_LEAF_CALLS`]).
fn fragment_hints(o: &TraceOverview, others: &[TraceSummary]) -> impl IntoView + use<> {
    let ours: HashSet<&str> = o.services.iter().map(|s| s.service.as_str()).collect();
    let mut hints: Vec<(String, String, String)> = Vec::new();
    let others: Vec<&TraceSummary> = others
        .iter()
        .filter(|t| t.trace_id != o.trace_id && !t.root_service.is_empty())
        .collect();
    for t in &others {
        if ours.contains(t.root_service.as_str()) {
            continue;
        }
        // The shortest of our leaves that was running when the other trace began (the list is
        // shortest first).
        let during = o
            .leaf_calls
            .iter()
            .find(|c| t.start_time >= c.start_time && t.start_time <= c.start_time + c.duration);
        if let Some(c) = during {
            hints.push((
                t.trace_id.clone(),
                format!("{}: {}", t.root_service, t.root_operation),
                format!(
                    "started during {} · {}, which has no child span here: the context was likely dropped at this hop.",
                    c.service, c.operation
                ),
            ));
        }
    }
    if let Some(r) = o.root.as_ref().map(|r| &r.span)
        && r.kind() == Some("server")
    {
        let svc = service_name(&o.processes, r);
        for t in &others {
            let contains =
                t.start_time <= r.start_time && t.start_time + t.duration >= r.end_time();
            if contains
                && t.start_time < r.start_time
                && !t.services.iter().any(|s| s.service == svc)
            {
                hints.push((
                    t.trace_id.clone(),
                    format!("{}: {}", t.root_service, t.root_operation),
                    format!("was running when this trace's root ({svc}) began and has no {svc} span: this trace may be its detached fragment."),
                ));
            }
        }
    }
    hints.sort();
    hints.dedup();
    hints.truncate(5);
    (!hints.is_empty()).then(|| {
        view! {
            <ul class="fragments" id="fragments">
                {hints.into_iter().map(|(id, title, why)| view! {
                    <li>
                        <span class="badge warn">"Detached fragment?"</span>" "
                        <a href=format!("/trace/{id}")>{title}</a>" "
                        <code>{id.chars().take(12).collect::<String>()}</code>" "
                        {why}
                    </li>
                }).collect_view()}
            </ul>
        }
    })
}

/// The selected span's details, read from the collector by id (the span need not be among the
/// rows held), and its log records.
#[component]
fn SpanPanel(
    trace_id: String,
    span_id: String,
    trace_start: u64,
    on_close: impl Fn() + Clone + Send + Sync + 'static,
) -> impl IntoView {
    let detail = {
        let (t, s) = (trace_id.clone(), span_id.clone());
        LocalResource::new(move || load_tree_spans(t.clone(), vec![s.clone()]))
    };
    let logs = {
        let (t, s) = (trace_id.clone(), span_id.clone());
        LocalResource::new(move || load_logs(t.clone(), Some(s.clone())))
    };
    view! {
        <Suspense fallback=|| view! { <aside class="span-panel" id="span-panel-loading"><p class="notice">"Loading span…"</p></aside> }>
            {move || {
                let on_close = on_close.clone();
                Suspend::new(async move {
                    match detail.await {
                        Ok(mut d) if !d.rows.is_empty() => {
                            let r = d.rows.remove(0);
                            span_details(r, &d.processes, &d.names, trace_start, logs, on_close)
                        }
                        Ok(_) => view! { <aside class="span-panel"><p class="error">"This span is not in the trace."</p></aside> }.into_any(),
                        Err(e) => view! { <aside class="span-panel"><p class="error" role="alert">{error_text(&e)}</p></aside> }.into_any(),
                    }
                })
            }}
        </Suspense>
    }
}

type Names = std::collections::BTreeMap<String, collector_api::tree::SpanName>;
type Logs = LocalResource<Result<collector_api::v1::LogsResponse, ServerFnError>>;

fn span_details(
    r: TreeRow,
    processes: &std::collections::BTreeMap<String, Process>,
    names: &Names,
    trace_start: u64,
    logs: Logs,
    on_close: impl Fn() + 'static,
) -> AnyView {
    let s = r.span;
    let service = service_name(processes, &s).to_string();
    let kind = s.kind().unwrap_or("internal").to_string();
    let status = s
        .tag_str("otel.status_code")
        .map(str::to_string)
        .unwrap_or_else(|| {
            if s.is_error() {
                "ERROR".into()
            } else {
                "UNSET".into()
            }
        });
    let status_msg = s.tag_str("otel.status_description").map(str::to_string);
    let crit: u64 = r.critical.iter().map(|[a, b]| b - a).sum();
    let attrs: Vec<(String, String)> = s
        .tags
        .iter()
        .filter(|t| {
            !matches!(
                t.key.as_str(),
                "span.kind" | "otel.status_code" | "otel.status_description"
            )
        })
        .map(|t| (t.key.clone(), value_text(t)))
        .collect();
    let resource: Vec<(String, String)> = processes
        .get(&s.process_id)
        .map(|p| {
            p.tags
                .iter()
                .map(|t| (t.key.clone(), value_text(t)))
                .collect()
        })
        .unwrap_or_default();
    let events: Vec<(String, String, Fields)> = s
        .logs
        .iter()
        .map(|l| {
            let name = l.event_name().unwrap_or("event").to_string();
            let fields = l
                .fields
                .iter()
                .filter(|f| f.key != "event")
                .map(|f| (f.key.clone(), value_text(f)))
                .collect();
            (
                format!(
                    "+{}",
                    format::duration_us(l.timestamp.saturating_sub(s.start_time))
                ),
                name,
                fields,
            )
        })
        .collect();
    let label = |id: &str, missing: &str| {
        names.get(id).map_or_else(
            || format!("{id} {missing}"),
            |n| format!("{} · {}", n.service, n.operation),
        )
    };
    let links: Vec<(String, String, String)> = s
        .references
        .iter()
        .filter(|r| r.ref_type == RefType::FollowsFrom || r.trace_id != s.trace_id)
        .map(|r| {
            let text = if r.trace_id == s.trace_id {
                names.get(&r.span_id).map_or_else(
                    || format!("span {} (not in this trace)", r.span_id),
                    |n| format!("{} · {}", n.service, n.operation),
                )
            } else {
                format!("span {} in trace {}", r.span_id, r.trace_id)
            };
            (
                format!("/trace/{}?span={}", r.trace_id, r.span_id),
                text,
                r.span_id.clone(),
            )
        })
        .collect();
    let parent = s.parent_span_id().map(|p| {
        (
            format!("/trace/{}?span={p}", s.trace_id),
            label(p, "(missing)"),
        )
    });
    let (span_start, span_end) = (s.start_time, s.end_time());
    view! {
        <aside class="span-panel" id="span-panel" data-span-id=s.span_id.clone()>
            <header>
                <h2>
                    <span class="chip" style:background=service_colour(&service)></span>
                    <span class="svc">{service.clone()}</span>" "
                    <span id="panel-operation">{s.operation_name.clone()}</span>
                </h2>
                <button class="close" aria-label="Close" on:click=move |_| on_close()>"×"</button>
            </header>
            <table class="kv summary">
                <tr><th>"Kind"</th><td id="panel-kind">{kind}</td></tr>
                <tr><th>"Status"</th><td id="panel-status" class:errors={status == "ERROR"}>{status.clone()}{status_msg.map(|m| format!(": {m}"))}</td></tr>
                <tr><th>"Duration"</th><td>{format::duration_us(s.duration)}</td></tr>
                <tr><th>"Starts at"</th><td>{format!("+{}", format::duration_us(s.start_time.saturating_sub(trace_start)))}</td></tr>
                <tr><th>"On critical path"</th><td>{if crit > 0 { format::duration_us(crit) } else { "no".into() }}</td></tr>
                <tr><th>"Span ID"</th><td><code>{s.span_id.clone()}</code></td></tr>
                {parent.map(|(href, label)| view! { <tr><th>"Parent"</th><td><a href=href>{label}</a></td></tr> })}
            </table>
            <h3>"Attributes"</h3>
            <table class="kv" id="panel-attributes">
                {attrs.into_iter().map(|(k, v)| view! { <tr><th>{k}</th><td>{v}</td></tr> }).collect_view()}
            </table>
            {(!events.is_empty()).then(|| view! {
                <h3>"Events"</h3>
                <ol class="events" id="panel-events">
                    {events.into_iter().map(|(at, name, fields)| view! {
                        <li>
                            <span class="at">{at}</span>" "<strong>{name}</strong>
                            <table class="kv">
                                {fields.into_iter().map(|(k, v)| view! { <tr><th>{k}</th><td>{v}</td></tr> }).collect_view()}
                            </table>
                        </li>
                    }).collect_view()}
                </ol>
            })}
            <h3>"Logs"</h3>
            {move || logs.get().map(|r| match r {
                Ok(l) if l.data.is_empty() => view! { <p class="notice" id="panel-no-logs">"No log records in this span."</p> }.into_any(),
                Ok(l) => view! {
                    <ol class="span-logs" id="panel-logs">
                        {l.data.into_iter().map(|rec| span_log(rec, span_start, span_end)).collect_view()}
                    </ol>
                }.into_any(),
                Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
            })}
            {(!links.is_empty()).then(|| view! {
                <h3>"Links"</h3>
                <ul class="links" id="panel-links">
                    {links.into_iter().map(|(href, label, id)| view! {
                        <li><a href=href data-link-span=id>{label}</a></li>
                    }).collect_view()}
                </ul>
            })}
            <h3>"Resource"</h3>
            <table class="kv" id="panel-resource">
                {resource.into_iter().map(|(k, v)| view! { <tr><th>{k}</th><td>{v}</td></tr> }).collect_view()}
            </table>
        </aside>
    }
    .into_any()
}

/// One log record of the span: level, time offset in the span, body, attributes.
fn span_log(rec: LogRecord, span_start: u64, span_end: u64) -> impl IntoView {
    let level = severity_level(rec.severity_number);
    // A record outside the span's time (clock skew, a late flush) says so rather than lying.
    let at = if rec.timestamp < span_start {
        format!("-{}", format::duration_us(span_start - rec.timestamp))
    } else {
        format!("+{}", format::duration_us(rec.timestamp - span_start))
    };
    let outside = rec.timestamp < span_start || rec.timestamp > span_end;
    let attrs: Fields = rec
        .attributes
        .iter()
        .map(|a| (a.key.clone(), value_text(a)))
        .collect();
    view! {
        <li class="log" data-level=level>
            <span class="at" title=if outside { "outside the span's time" } else { "" }>{at}</span>" "
            <span class=format!("level level-{}", level.to_ascii_lowercase())>{level}</span>" "
            <span class="body">{rec.body}</span>
            {(!attrs.is_empty()).then(|| view! {
                <table class="kv">
                    {attrs.into_iter().map(|(k, v)| view! { <tr><th>{k}</th><td>{v}</td></tr> }).collect_view()}
                </table>
            })}
        </li>
    }
}

/// Every log record of the trace, oldest first, filtered by a minimum level; each links to its span.
#[component]
fn LogsTab(trace_id: String, trace_start: u64) -> impl IntoView {
    let logs = {
        let t = trace_id.clone();
        LocalResource::new(move || load_logs(t.clone(), None))
    };
    let min_level = RwSignal::new(1i32);
    view! {
        <section class="logs-tab" id="logs-tab" aria-label="Logs">
            <label class="min-level">"Minimum level "
                <select id="log-level" on:change=move |ev| {
                    min_level.set(event_target_value(&ev).parse().unwrap_or(1));
                }>
                    {SEVERITY_LEVELS.iter().map(|(name, lo)| view! {
                        <option value=lo.to_string()>{*name}</option>
                    }).collect_view()}
                </select>
            </label>
            <Suspense fallback=|| view! { <p class="notice">"Loading logs…"</p> }>
                {move || {
                    let trace_id = trace_id.clone();
                    Suspend::new(async move {
                        match logs.await {
                            Ok(l) if l.data.is_empty() => view! { <p class="notice" id="no-logs">"No log records carry this trace's id."</p> }.into_any(),
                            Ok(l) => {
                                let all = Arc::new(l.data);
                                let shown = {
                                    let all = all.clone();
                                    move || all.iter().filter(|r| r.severity_number.max(1) >= min_level.get()).count()
                                };
                                let total = all.len();
                                view! {
                                    <p class="notice" id="logs-count">{move || format!("{} of {total} records", shown())}</p>
                                    <table class="logs" id="logs">
                                        <thead><tr><th>"Time"</th><th>"Level"</th><th>"Service"</th><th>"Message"</th><th>"Attributes"</th><th>"Span"</th></tr></thead>
                                        <tbody>
                                            {move || all.iter().filter(|r| r.severity_number.max(1) >= min_level.get())
                                                .map(|r| log_row(r, &trace_id, trace_start)).collect_view()}
                                        </tbody>
                                    </table>
                                }.into_any()
                            }
                            Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
                        }
                    })
                }}
            </Suspense>
        </section>
    }
}

fn log_row(r: &LogRecord, trace_id: &str, trace_start: u64) -> impl IntoView + use<> {
    let level = severity_level(r.severity_number);
    let attrs = r
        .attributes
        .iter()
        .map(|a| format!("{}={}", a.key, value_text(a)))
        .collect::<Vec<_>>()
        .join(" ");
    let span = (!r.span_id.is_empty()).then(|| {
        view! {
            <a class="log-span" href=format!("/trace/{trace_id}?span={}", r.span_id)>
                <code>{r.span_id.clone()}</code>
            </a>
        }
    });
    view! {
        <tr class="log" data-level=level data-severity=r.severity_number.to_string()>
            <td class="at">{format!("+{}", format::duration_us(r.timestamp.saturating_sub(trace_start)))}</td>
            <td><span class=format!("level level-{}", level.to_ascii_lowercase())>{level}</span></td>
            <td class="svc">{r.service_name.clone()}</td>
            <td class="body">{r.body.clone()}</td>
            <td class="attrs">{attrs}</td>
            <td>{span}</td>
        </tr>
    }
}

/// Key/value rows of a table.
type Fields = Vec<(String, String)>;

/// An attribute value as text (never HTML: Leptos escapes text nodes).
fn value_text(kv: &collector_api::KeyValue) -> String {
    kv.value_as_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use collector_api::v1::DecisionTrigger;

    #[test]
    fn the_sampling_badge_says_who_kept_the_trace() {
        let d = |policy: Option<&str>| SamplingDecision {
            trace_id: "0".repeat(32),
            decision: Decision::Sampled,
            policy: policy.map(str::to_string),
            trigger: DecisionTrigger::DecisionWait,
            span_count: 3,
            decided_at_ms: 0,
            error: false,
            duration_us: 0,
            processor: String::new(),
        };
        assert_eq!(
            sampling_text(None, Some(d(Some("errors")))),
            "Sampling: kept by tail-sampling policy errors"
        );
        assert_eq!(
            sampling_text(Some("slow".into()), None),
            "Sampling: kept by tail-sampling policy slow"
        );
        assert_eq!(sampling_text(None, None), "Sampling: kept — no sampling");
        let mut dropped = d(None);
        dropped.decision = Decision::NotSampled;
        assert!(sampling_text(None, Some(dropped)).contains("dropped"));
    }
}
