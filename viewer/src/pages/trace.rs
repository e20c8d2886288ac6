//! The trace page: header facts, the bottleneck sentence, badges (incomplete trace, detached
//! fragments, the sampling decision), a virtualised waterfall with the critical path drawn on it,
//! and the span panel. Spans arrive in windows of [`WINDOW`] from `/api/v1/traces/{id}/spans`;
//! only the rows in view are in the DOM, so a 10,000-span trace scrolls like a 10-span one.
//!
//! The page loads in the browser (a `LocalResource`): the server sends the frame, the browser
//! fetches the windows, so a huge trace is never inlined into the HTML.

use std::collections::HashSet;
use std::sync::Arc;

use collector_api::RefType;
use collector_api::v1::{Decision, SamplingDecision, TraceSummary};
use leptos::prelude::*;
use leptos_router::NavigateOptions;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};

use crate::api::{WINDOW, find_sampling_decision, load_span_window, traces_between};
use crate::format;
use crate::model::{TraceModel, WindowMerger, service_colour};
use crate::pages::search::error_text;

/// Pixel height of one waterfall row (CSS `.row` uses the same).
const ROW_H: f64 = 26.0;
/// Rows rendered above and below the viewport.
const OVERSCAN: usize = 12;
/// The viewer stops loading windows past this many spans and says so.
pub const MAX_SPANS: u64 = 100_000;

async fn load(id: String) -> Result<Arc<TraceModel>, String> {
    let first = load_span_window(id.clone(), 0, WINDOW)
        .await
        .map_err(|e| error_text(&e))?;
    let total = first.total;
    let trace_id = first.trace_id.clone();
    let mut merged = WindowMerger::default();
    merged.add(first.spans, first.processes);
    let want = total.min(MAX_SPANS);
    while (merged.spans.len() as u64) < want {
        let w = load_span_window(id.clone(), merged.spans.len() as u64, WINDOW)
            .await
            .map_err(|e| error_text(&e))?;
        if w.spans.is_empty() {
            break;
        }
        merged.add(w.spans, w.processes);
    }
    Ok(Arc::new(TraceModel::new(
        trace_id,
        merged.spans,
        merged.processes,
        total,
    )))
}

#[component]
pub fn TracePage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let trace_id = Memo::new(move |_| params.read().get("id").unwrap_or_default());
    let selected = Memo::new(move |_| query.read().get("span"));
    let loaded = LocalResource::new(move || load(trace_id.get()));
    view! {
        <Suspense fallback=|| view! { <p class="notice" id="loading">"Loading trace…"</p> }>
            {move || Suspend::new(async move {
                match loaded.await {
                    Ok(model) => view! { <TraceView model selected/> }.into_any(),
                    Err(e) => view! {
                        <p class="error" role="alert">{format!("Trace {}: {e}", trace_id.get_untracked())}</p>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn TraceView(model: Arc<TraceModel>, selected: Memo<Option<String>>) -> impl IntoView {
    let m = model.clone();
    let selected_idx = Memo::new(move |_| selected.get().and_then(|id| m.index_of(&id)));
    let collapsed = RwSignal::new(HashSet::<usize>::new());
    let m = model.clone();
    let rows = Memo::new(move |_| m.visible_rows(&collapsed.read()));
    let scroll_top = RwSignal::new(0.0f64);
    let viewport = RwSignal::new(700.0f64);
    let scroller = NodeRef::<leptos::html::Div>::new();
    let navigate = use_navigate();
    let trace_id = model.trace_id.clone();

    // A span chosen by URL (a link, a reload) is expanded into view and scrolled to.
    let m = model.clone();
    Effect::new(move |_| {
        let Some(i) = selected_idx.get() else { return };
        let anc = m.ancestors(i);
        if anc.iter().any(|a| collapsed.read_untracked().contains(a)) {
            collapsed.update(|c| {
                anc.iter().for_each(|a| {
                    c.remove(a);
                })
            });
        }
        let pos = rows.read_untracked().iter().position(|&r| r == i);
        if let (Some(pos), Some(el)) = (pos, scroller.get_untracked()) {
            let y = pos as f64 * ROW_H;
            let top = f64::from(el.scroll_top());
            let h = f64::from(el.client_height());
            if y < top || y + ROW_H > top + h {
                el.set_scroll_top((y - h / 3.0).max(0.0) as i32);
            }
        }
    });
    // The scroller is never taller than the window; its own height may read 0 before layout.
    Effect::new(move |_| {
        let h = window()
            .inner_height()
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(900.0);
        viewport.set(h);
    });

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

    let m = model.clone();
    let rows_view = move || {
        let rows = rows.read();
        let top = scroll_top.get();
        let h = viewport.get();
        let first = ((top / ROW_H) as usize).saturating_sub(OVERSCAN);
        let last = (((top + h) / ROW_H).ceil() as usize + OVERSCAN).min(rows.len());
        let sel = selected_idx.get();
        let coll = collapsed.read();
        (first..last)
            .map(|pos| {
                let i = rows[pos];
                row(
                    &m,
                    pos,
                    i,
                    sel == Some(i),
                    coll.contains(&i),
                    collapsed,
                    select.clone(),
                )
            })
            .collect_view()
    };
    let m = model.clone();
    let total_rows = move || rows.read().len();

    view! {
        <div class="trace-page" data-trace-id=model.trace_id.clone()>
            <TraceHeader model=model.clone()/>
            <div class="trace-body">
                <section class="waterfall" aria-label="Waterfall">
                    <div class="ruler">
                        <div class="ruler-label">
                            <button class="link" id="expand-all" on:click=move |_| collapsed.set(HashSet::new())>"Expand all"</button>
                            " · "
                            <button class="link" id="collapse-all" on:click={
                                let m = m.clone();
                                move |_| collapsed.set((0..m.spans.len()).filter(|&i| m.has_children[i] && m.depth[i] >= 1).collect())
                            }>"Collapse all"</button>
                            <span class="row-count">{move || format!(" · {} rows", total_rows())}</span>
                        </div>
                        <div class="ruler-ticks">
                            {(0..=4).map(|k| {
                                let d = model.duration() * k / 4;
                                view! {
                                    <span class="tick" style:left=format!("{}%", k * 25)>{if k == 0 { "0".to_string() } else { format::duration_us(d) }}</span>
                                }
                            }).collect_view()}
                        </div>
                    </div>
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
                        <div class="rows" style:height=move || format!("{}px", rows.read().len() as f64 * ROW_H)>
                            {rows_view}
                        </div>
                    </div>
                </section>
                {
                    let model = model.clone();
                    move || selected_idx.get().map(|i| {
                        let close = close.clone();
                        view! { <SpanPanel model=model.clone() index=i on_close=move || close()/> }
                    })
                }
            </div>
        </div>
    }
}

fn pct(v: u64, of: u64) -> String {
    format!("{:.4}%", v as f64 * 100.0 / of.max(1) as f64)
}

fn row(
    m: &TraceModel,
    pos: usize,
    i: usize,
    is_selected: bool,
    is_collapsed: bool,
    collapsed: RwSignal<HashSet<usize>>,
    select: impl Fn(String) + Clone + 'static,
) -> AnyView {
    let s = &m.spans[i];
    let colour = m.colour(i);
    let dur = m.duration();
    let offset = s.start_time.saturating_sub(m.start);
    let width = s.duration.max(dur / 2000);
    // The duration label goes after the bar; near the right edge, inside a wide bar or before a
    // narrow one, so it never runs off the timeline or over another colour unreadably.
    let (start_pct, end_pct) = (
        offset as f64 / dur as f64 * 100.0,
        (offset + width) as f64 / dur as f64 * 100.0,
    );
    let (label_class, label_style) = if end_pct < 88.0 {
        ("bar-label", format!("left: {end_pct:.3}%"))
    } else if end_pct - start_pct > 10.0 {
        (
            "bar-label inside",
            format!("right: {:.3}%", 100.0 - end_pct),
        )
    } else {
        (
            "bar-label before",
            format!("right: {:.3}%", 100.0 - start_pct),
        )
    };
    let on_critical = !m.critical[i].is_empty();
    let crit: Vec<(String, String)> = m.critical[i]
        .iter()
        .map(|&(a, b)| (pct(a - m.start, dur), pct((b - a).max(dur / 4000), dur)))
        .collect();
    let span_id = s.span_id.clone();
    let toggle = if m.has_children[i] {
        view! {
            <button class="toggle" aria-label=if is_collapsed { "expand" } else { "collapse" }
                aria-expanded=(!is_collapsed).to_string()
                on:click=move |ev| {
                    ev.stop_propagation();
                    collapsed.update(|c| if !c.remove(&i) { c.insert(i); });
                }>
                {if is_collapsed { "▸" } else { "▾" }}
            </button>
        }
        .into_any()
    } else {
        view! { <span class="toggle-space"></span> }.into_any()
    };
    let error = s.is_error();
    view! {
        <div class="row" class:selected=is_selected class:error=error class:critical=on_critical
            style:top=format!("{}px", pos as f64 * ROW_H)
            data-span-id=span_id.clone() data-operation=s.operation_name.clone()
            on:click=move |_| select(span_id.clone())>
            <div class="row-label" style:padding-left=format!("{}px", 4 + m.depth[i].min(40) * 12)>
                {toggle}
                <span class="chip" style:background=colour></span>
                <span class="svc">{m.service(i).to_string()}</span>
                <span class="op">{s.operation_name.clone()}</span>
                {error.then(|| view! { <span class="err-mark" title="error">"!"</span> })}
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
fn TraceHeader(model: Arc<TraceModel>) -> impl IntoView {
    let m = &model;
    let root = m.root.map(|r| &m.spans[r]);
    let title = root.map_or_else(
        || "(no spans)".to_string(),
        |r| format!("{}: {}", m.service(m.root.unwrap_or(0)), r.operation_name),
    );
    let root_service = m.root.map(|r| m.service(r).to_string()).unwrap_or_default();
    let root_duration = root.map_or(0, |r| r.duration);
    let services = m.services();
    let loaded = m.spans.len() as u64;
    let bottleneck = m.bottleneck.clone();
    let missing = m.missing_parent.len();
    let policy = root
        .and_then(|r| {
            r.tag_str("tailsampling.policy")
                .or_else(|| r.tag_str("tracelab.sampling.policy"))
        })
        .map(str::to_string);
    let trace_id = m.trace_id.clone();
    let decision = {
        let trace_id = trace_id.clone();
        LocalResource::new(move || find_sampling_decision(trace_id.clone()))
    };
    let (lo, hi) = (m.start, m.end);
    let neighbours =
        LocalResource::new(move || traces_between(lo.saturating_sub(1_000), hi + 1_000));
    let fm = model.clone();
    view! {
        <section class="trace-head">
            <h1>
                <span class="chip" style:background=service_colour(&root_service)></span>
                <span id="trace-title">{title}</span>
                <code class="trace-id">{trace_id.clone()}</code>
            </h1>
            <dl class="facts">
                <div><dt>"Start"</dt><dd>{format::timestamp_us(m.start)}</dd></div>
                <div><dt>"Duration"</dt><dd id="trace-duration">{format::duration_us(m.end - m.start)}</dd></div>
                <div><dt>"Services"</dt><dd>{services.len()}</dd></div>
                <div><dt>"Depth"</dt><dd>{m.max_depth + 1}</dd></div>
                <div><dt>"Spans"</dt><dd id="span-count">{m.total}</dd></div>
                <div><dt>"Errors"</dt><dd class:errors={m.error_count() > 0}>{m.error_count()}</dd></div>
            </dl>
            <div class="services-legend">
                {services.iter().map(|s| view! {
                    <span class="pill" style:border-color=service_colour(s)>{s.clone()}</span>
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
                {(loaded < m.total).then(|| view! {
                    <span class="badge warn">{format!("Showing the first {loaded} of {} spans", m.total)}</span>
                })}
                {(missing > 0).then(|| view! {
                    <span class="badge warn" id="incomplete" title="Spans whose parent span is not in this trace: it never arrived, was sampled away, or the context was broken.">
                        {format!("Incomplete trace: {missing} span{} point{} to a missing parent", if missing == 1 { "" } else { "s" }, if missing == 1 { "s" } else { "" })}
                    </span>
                })}
                <span class="badge sampling" id="sampling">
                    {move || sampling_text(policy.clone(), decision.get().and_then(|d| d.ok()).flatten())}
                </span>
            </div>
            {move || neighbours.get().and_then(|r| r.ok()).map(|others| fragment_hints(&fm, &others))}
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
/// trace, that began while one of our leaf spans ran (the call lost its context), or —
/// when our root is a SERVER span — a trace that was running when we began and lacks our service.
fn fragment_hints(m: &TraceModel, others: &[TraceSummary]) -> impl IntoView + use<> {
    let ours: HashSet<String> = m.services().into_iter().collect();
    let mut hints: Vec<(String, String, String)> = Vec::new();
    let others: Vec<&TraceSummary> = others
        .iter()
        .filter(|t| t.trace_id != m.trace_id && !t.root_service.is_empty())
        .collect();
    let leaves = m.leaf_calls();
    for t in &others {
        if ours.contains(&t.root_service) {
            continue;
        }
        // The shortest of our leaves that was running when the other trace began.
        let during = leaves
            .iter()
            .copied()
            .filter(|&c| {
                t.start_time >= m.spans[c].start_time && t.start_time <= m.spans[c].end_time()
            })
            .min_by_key(|&c| m.spans[c].duration);
        if let Some(c) = during {
            hints.push((
                t.trace_id.clone(),
                format!("{}: {}", t.root_service, t.root_operation),
                format!(
                    "started during {} · {}, which has no child span here: the context was likely dropped at this hop.",
                    m.service(c),
                    m.spans[c].operation_name
                ),
            ));
        }
    }
    if let Some(r) = m.root
        && m.spans[r].kind() == Some("server")
    {
        let root = &m.spans[r];
        let svc = m.service(r);
        for t in &others {
            let contains =
                t.start_time <= root.start_time && t.start_time + t.duration >= root.end_time();
            if contains
                && t.start_time < root.start_time
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

#[component]
fn SpanPanel(model: Arc<TraceModel>, index: usize, on_close: impl Fn() + 'static) -> impl IntoView {
    let m = &model;
    let s = &m.spans[index];
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
    let crit: u64 = m.critical[index].iter().map(|(a, b)| b - a).sum();
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
    let resource: Vec<(String, String)> = m
        .processes
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
    let links: Vec<(String, String, String)> = s
        .references
        .iter()
        .filter(|r| r.ref_type == RefType::FollowsFrom || r.trace_id != s.trace_id)
        .map(|r| {
            let label = if r.trace_id == s.trace_id {
                m.index_of(&r.span_id).map_or_else(
                    || format!("span {} (not in this trace)", r.span_id),
                    |j| format!("{} · {}", m.service(j), m.spans[j].operation_name),
                )
            } else {
                format!("span {} in trace {}", r.span_id, r.trace_id)
            };
            (
                format!("/trace/{}?span={}", r.trace_id, r.span_id),
                label,
                r.span_id.clone(),
            )
        })
        .collect();
    let parent = s.parent_span_id().map(|p| {
        let label = m.index_of(p).map_or_else(
            || format!("{p} (missing)"),
            |j| format!("{} · {}", m.service(j), m.spans[j].operation_name),
        );
        (format!("/trace/{}?span={p}", s.trace_id), label)
    });
    view! {
        <aside class="span-panel" id="span-panel" data-span-id=s.span_id.clone()>
            <header>
                <h2>
                    <span class="chip" style:background=m.colour(index)></span>
                    <span class="svc">{m.service(index).to_string()}</span>" "
                    <span id="panel-operation">{s.operation_name.clone()}</span>
                </h2>
                <button class="close" aria-label="Close" on:click=move |_| on_close()>"×"</button>
            </header>
            <table class="kv summary">
                <tr><th>"Kind"</th><td id="panel-kind">{kind}</td></tr>
                <tr><th>"Status"</th><td id="panel-status" class:errors={status == "ERROR"}>{status.clone()}{status_msg.map(|m| format!(": {m}"))}</td></tr>
                <tr><th>"Duration"</th><td>{format::duration_us(s.duration)}</td></tr>
                <tr><th>"Starts at"</th><td>{format!("+{}", format::duration_us(s.start_time.saturating_sub(m.start)))}</td></tr>
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
