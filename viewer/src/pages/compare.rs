//! Trace compare: `/trace/{A}...{B}` (Jaeger UI's compare URL) shows two traces as aligned
//! waterfalls — one row per aligned span pair ([`crate::compare`]), A's bar on the left, B's on the
//! right, both on one time scale, the signed duration delta (B − A) per row, spans only in B marked
//! added and only in A removed — under a summary naming the span whose own time changed most.
//! `/compare` is a small form that leads there. Both traces load in the browser through the span
//! windows of the trace page ([`load_span_window`], merged by [`WindowMerger`]).

use std::sync::Arc;

use leptos::prelude::*;
use leptos_router::components::Redirect;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::{WINDOW, load_span_window};
use crate::compare::{Change, Comparison, compare, parse_pair, signed_ms};
use crate::format;
use crate::model::{TraceModel, WindowMerger, service_colour};
use crate::pages::search::error_text;
use crate::pages::trace::{ROW_H, TracePage, drawn_range};

/// Spans loaded per side; a trace with more is compared on its first this many (and says so).
pub const MAX_COMPARE_SPANS: u64 = 20_000;

/// The `/trace/:id` route: a single trace, or — when the id is `A...B` — the comparison.
#[component]
pub fn TraceOrCompare() -> impl IntoView {
    let params = use_params_map();
    let pair = Memo::new(move |_| params.read().get("id").and_then(|id| parse_pair(&id)));
    move || match pair.get() {
        None => view! { <TracePage/> }.into_any(),
        Some(Ok((a, b))) => view! { <CompareView a b/> }.into_any(),
        Some(Err(e)) => view! {
            <p class="error" role="alert" id="compare-error">{e}</p>
            <p class="notice"><a href="/compare">"Compare two traces"</a></p>
        }
        .into_any(),
    }
}

/// Both traces loaded and aligned.
struct Loaded {
    a: TraceModel,
    b: TraceModel,
    cmp: Comparison,
}

async fn load_side(id: String) -> Result<TraceModel, String> {
    let mut merged = WindowMerger::default();
    let first = load_span_window(id.clone(), 0, WINDOW)
        .await
        .map_err(|e| error_text(&e))?;
    let (total, trace_id) = (first.total, first.trace_id.clone());
    merged.add(first.spans, first.processes);
    let want = total.min(MAX_COMPARE_SPANS);
    // Bounded: each pass adds at least one span or stops.
    while (merged.spans.len() as u64) < want {
        let w = load_span_window(id.clone(), merged.spans.len() as u64, WINDOW)
            .await
            .map_err(|e| error_text(&e))?;
        if w.spans.is_empty() {
            break;
        }
        merged.add(w.spans, w.processes);
    }
    Ok(TraceModel::new(
        trace_id,
        merged.spans,
        merged.processes,
        total,
    ))
}

async fn load_both(a: String, b: String) -> Result<Arc<Loaded>, String> {
    let ma = load_side(a.clone())
        .await
        .map_err(|e| format!("Trace A {a}: {e}"))?;
    let mb = load_side(b.clone())
        .await
        .map_err(|e| format!("Trace B {b}: {e}"))?;
    let cmp = compare(&ma, &mb);
    Ok(Arc::new(Loaded { a: ma, b: mb, cmp }))
}

#[component]
fn CompareView(a: String, b: String) -> impl IntoView {
    let loaded = LocalResource::new(move || load_both(a.clone(), b.clone()));
    view! {
        <Suspense fallback=|| view! { <p class="notice" id="loading">"Loading both traces…"</p> }>
            {move || Suspend::new(async move {
                match loaded.await {
                    Ok(l) => view! { <Aligned l/> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert" id="compare-error">{e}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

fn pct(v: u64, of: u64) -> String {
    format!("{:.4}%", v as f64 * 100.0 / of.max(1) as f64)
}

fn delta_class(d: i64) -> &'static str {
    // Under a millisecond is noise between two runs of the same request.
    match d {
        ..=-1000 => "delta down",
        1000.. => "delta up",
        _ => "delta same",
    }
}

#[component]
fn Aligned(l: Arc<Loaded>) -> impl IntoView {
    // One scale for both sides: the longer trace fills its lane, so equal widths are equal times.
    let scale = l.cmp.total_a.max(l.cmp.total_b).max(1);
    let scroll_top = RwSignal::new(0.0f64);
    let viewport = RwSignal::new(700.0f64);
    let scroller = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        let h = window()
            .inner_height()
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(900.0);
        viewport.set(h);
    });
    let n = l.cmp.rows.len();
    let rl = l.clone();
    let rows_view = move || {
        let top = scroll_top.get();
        let h = viewport.get();
        let (first, last) = drawn_range(top, h, n as u64);
        (first as usize..last as usize)
            .map(|pos| cmp_row(&rl, pos, scale))
            .collect_view()
    };
    let ticks = move || {
        (0..=4)
            .map(|k| {
                let label = if k == 0 {
                    "0".to_string()
                } else {
                    format::duration_us(scale * k / 4)
                };
                view! { <span class="tick" style:left=format!("{}%", k * 25)>{label}</span> }
            })
            .collect_view()
    };
    view! {
        <div class="trace-page cmp-page" data-trace-a=l.a.trace_id.clone() data-trace-b=l.b.trace_id.clone()>
            <CompareHeader l=l.clone() scale/>
            <section class="waterfall cmp-waterfall" aria-label="Aligned waterfalls">
                <div class="cmp-row cmp-ruler">
                    <div class="ruler-label">{format!("{n} aligned rows")}</div>
                    <div class="cmp-lane ruler-ticks">{ticks}</div>
                    <div class="cmp-lane ruler-ticks">{ticks}</div>
                    <div class="cmp-delta">"B − A"</div>
                </div>
                <div class="scroller" id="compare-rows" node_ref=scroller
                    on:scroll=move |_| {
                        if let Some(el) = scroller.get_untracked() {
                            scroll_top.set(f64::from(el.scroll_top()));
                            let h = f64::from(el.client_height());
                            if h > ROW_H {
                                viewport.set(h);
                            }
                        }
                    }>
                    <div class="rows" style:height=format!("{}px", n as f64 * ROW_H)>
                        {rows_view}
                    </div>
                </div>
            </section>
        </div>
    }
}

/// One side's bar, on the common scale from that trace's own start; a link to the span.
fn lane(m: &TraceModel, i: Option<usize>, scale: u64) -> AnyView {
    let Some(i) = i else {
        return view! { <div class="cmp-lane empty"></div> }.into_any();
    };
    let s = &m.spans[i];
    let offset = s.start_time.saturating_sub(m.start);
    let width = s.duration.max(scale / 2000);
    let start_pct = offset as f64 * 100.0 / scale as f64;
    let end_pct = (offset + width) as f64 * 100.0 / scale as f64;
    // The duration after the bar; near the lane's right side inside a wide bar, or before a narrow
    // one, so it never spills into the other lane.
    let (label_class, label_style) = format::bar_label(start_pct, end_pct, 80.0, 15.0);
    view! {
        <a class="cmp-lane" href=format!("/trace/{}?span={}", m.trace_id, s.span_id)>
            <div class="bar" class:error=s.is_error() style:left=pct(offset, scale) style:width=pct(width, scale)
                style:background=m.colour(i)></div>
            <span class=label_class style=label_style>{format::duration_us(s.duration)}</span>
        </a>
    }
    .into_any()
}

fn cmp_row(l: &Loaded, pos: usize, scale: u64) -> AnyView {
    let r = &l.cmp.rows[pos];
    let change = r.change();
    let delta = match (change, r.delta()) {
        (Change::Matched, Some(d)) => {
            view! { <span class=delta_class(d)>{signed_ms(d)}</span> }.into_any()
        }
        (Change::Added, _) => view! { <span class="mark added">"added"</span> }.into_any(),
        _ => view! { <span class="mark removed">"removed"</span> }.into_any(),
    };
    let occurrence = (r.occurrence > 0).then(|| format!(" #{}", r.occurrence + 1));
    view! {
        <div class=format!("cmp-row {}", change.as_str())
            class:biggest=l.cmp.biggest == Some(pos)
            style:top=format!("{}px", pos as f64 * ROW_H)
            data-change=change.as_str() data-service=r.service.clone() data-operation=r.operation.clone()
            data-occurrence=r.occurrence data-delta-us=r.delta().map(|d| d.to_string())>
            <div class="row-label" style:padding-left=format!("{}px", 6 + r.depth.min(40) * 12)>
                <span class="chip" style:background=service_colour(&r.service)></span>
                <span class="svc">{r.service.clone()}</span>
                <span class="op">{r.operation.clone()}{occurrence}</span>
            </div>
            {lane(&l.a, r.a, scale)}
            {lane(&l.b, r.b, scale)}
            <div class="cmp-delta">{delta}</div>
        </div>
    }
    .into_any()
}

/// One trace's card in the header.
fn side(which: &'static str, m: &TraceModel) -> impl IntoView + use<> {
    let title = m.root.map_or_else(
        || "(no spans)".to_string(),
        |r| format!("{}: {}", m.service(r), m.spans[r].operation_name),
    );
    let colour = m.root.map_or("#9ca3af", |r| m.colour(r));
    let loaded = m.spans.len() as u64;
    view! {
        <div class="cmp-side" id=format!("cmp-{}", which.to_lowercase())>
            <span class="cmp-which">{which}</span>
            <span class="chip" style:background=colour></span>
            <a class="cmp-title" href=format!("/trace/{}", m.trace_id)>{title}</a>
            <code class="trace-id">{m.trace_id.chars().take(12).collect::<String>()}</code>
            <span class="cmp-dur">{format::duration_us(m.end - m.start)}</span>
            <span class="notice">{format!("{} spans · {}", m.total, format::timestamp_us(m.start))}</span>
            {(loaded < m.total).then(|| view! {
                <span class="badge warn">{format!("compared on the first {loaded}")}</span>
            })}
        </div>
    }
}

#[component]
fn CompareHeader(l: Arc<Loaded>, scale: u64) -> impl IntoView {
    let c = &l.cmp;
    let total = c.total_delta();
    // The trace's extent includes async work (a Kafka consumer) after the request; the root span
    // is the request itself.
    let root_delta = c.rows.first().and_then(|r| r.delta());
    let biggest = c.biggest.map(|p| {
        let r = &c.rows[p];
        let name = format!("{} · {}", r.service, r.operation);
        let what = match r.delta() {
            Some(d) => signed_ms(d),
            None if r.change() == Change::Added => {
                format!("added ({})", format::duration_us(r.duration_b.unwrap_or(0)))
            }
            None => format!(
                "removed ({})",
                format::duration_us(r.duration_a.unwrap_or(0))
            ),
        };
        (name, what, signed_ms(r.own_delta()))
    });
    let swap = format!("/trace/{}...{}", l.b.trace_id, l.a.trace_id);
    view! {
        <section class="trace-head cmp-head">
            <h1>"Compare traces"<a class="cmp-swap" href=swap>"swap A and B"</a></h1>
            <div class="cmp-sides">{side("A", &l.a)}{side("B", &l.b)}</div>
            <dl class="facts">
                <div><dt>"Trace duration B − A"</dt><dd id="cmp-total-delta" class=delta_class(total)>{signed_ms(total)}</dd></div>
                {root_delta.map(|d| view! {
                    <div><dt>"Root span B − A"</dt><dd id="cmp-root-delta" class=delta_class(d)>{signed_ms(d)}</dd></div>
                })}
                <div><dt>"Matched"</dt><dd id="cmp-matched">{c.matched}</dd></div>
                <div><dt>"Added (only in B)"</dt><dd id="cmp-added">{c.added}</dd></div>
                <div><dt>"Removed (only in A)"</dt><dd id="cmp-removed">{c.removed}</dd></div>
                <div title="One time scale for both waterfalls, each trace drawn from its own start: equal widths are equal times."><dt>"Scale"</dt><dd>{format!("{} for both", format::duration_us(scale))}</dd></div>
            </dl>
            {match biggest {
                Some((name, what, own)) => view! {
                    <p class="bottleneck" id="cmp-biggest">
                        <strong>"Biggest change: "</strong>
                        <span id="cmp-biggest-name">{name}</span>" "
                        <span id="cmp-biggest-delta">{what}</span>
                        <span class="hint">{format!(" — its own time (outside its child spans) changed {own}")}</span>
                    </p>
                }.into_any(),
                None => view! {
                    <p class="bottleneck" id="cmp-biggest">"No span's own time changed: the traces match."</p>
                }.into_any(),
            }}
        </section>
    }
}

/// `/compare`: two trace ids → `/trace/A...B`. A plain GET form, so it works before the page is
/// hydrated: with both ids given, the server answers with a redirect.
#[component]
pub fn ComparePage() -> impl IntoView {
    let query = use_query_map();
    let a = query.read_untracked().get("a").unwrap_or_default();
    let b = query.read_untracked().get("b").unwrap_or_default();
    let target = (!a.trim().is_empty() || !b.trim().is_empty())
        .then(|| parse_pair(&format!("{}...{}", a.trim(), b.trim())))
        .flatten();
    let (redirect, error) = match target {
        Some(Ok((x, y))) => (Some(format!("/trace/{x}...{y}")), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    view! {
        <section class="cmp-form-page">
            <h1>"Compare two traces"</h1>
            <p class="notice">"Each span is matched by its path of service and operation from the root (a retry with the one of the same number); the page shows both waterfalls side by side, the duration change of every span (B − A), and the spans only one trace has. Or tick two traces in the "<a href="/search">"search results"</a>"."</p>
            <form method="get" action="/compare" id="compare-form">
                <label>"Trace A (the baseline)"<input name="a" id="compare-a" value=a spellcheck="false" placeholder="trace ID"/></label>
                <label>"Trace B"<input name="b" id="compare-b" value=b spellcheck="false" placeholder="trace ID"/></label>
                <button type="submit" id="compare-submit">"Compare"</button>
            </form>
            {error.map(|e| view! { <p class="error" role="alert" id="compare-error">{e}</p> })}
            {redirect.map(|path| view! { <Redirect path/> })}
        </section>
    }
}

/// The search list's selection for comparing: (start time, trace id) of each ticked result.
pub type Picked = RwSignal<Vec<(u64, String)>>;

/// A search result's "compare" tick box.
pub fn pick_box(picked: Picked, start: u64, trace_id: String) -> impl IntoView {
    let (shown, toggled) = (trace_id.clone(), trace_id.clone());
    view! {
        <label class="cmp-pick">
            <input type="checkbox" data-trace-id=trace_id
                prop:checked=move || picked.read().iter().any(|(_, t)| *t == shown)
                on:change=move |ev| {
                    let on = event_target_checked(&ev);
                    picked.update(|v| {
                        v.retain(|(_, t)| *t != toggled);
                        if on {
                            v.push((start, toggled.clone()));
                        }
                    });
                }/>
            "compare"
        </label>
    }
}

/// `/trace/A...B` for exactly two picked traces, the one that started first as A.
pub fn compare_href(picked: &[(u64, String)]) -> Option<String> {
    let [x, y] = picked else { return None };
    let (a, b) = if (x.0, &x.1) <= (y.0, &y.1) {
        (x, y)
    } else {
        (y, x)
    };
    Some(format!("/trace/{}...{}", a.1, b.1))
}

/// Above the search results: what ticking does, and with exactly two ticked, the link to compare.
#[component]
pub fn CompareBar(picked: Picked) -> impl IntoView {
    move || {
        let p = picked.read();
        match compare_href(&p) {
            Some(href) => view! {
                <p class="cmp-bar"><a class="cmp-go" id="compare-link" href=href>"Compare the two ticked traces"</a>
                    " "<button class="link" on:click=move |_| picked.set(Vec::new())>"clear"</button></p>
            }
            .into_any(),
            None => view! {
                <p class="cmp-bar notice">{match p.len() {
                    0 => "Tick two traces to compare them.".to_string(),
                    1 => "Tick one more trace to compare.".to_string(),
                    n => format!("{n} ticked: compare takes exactly two."),
                }}</p>
            }
            .into_any(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_ticked_traces_compare_the_older_first() {
        let old = (100, "aa".to_string());
        let new = (200, "bb".to_string());
        assert_eq!(compare_href(&[]), None);
        assert_eq!(compare_href(std::slice::from_ref(&old)), None);
        assert_eq!(
            compare_href(&[new.clone(), old.clone()]).as_deref(),
            Some("/trace/aa...bb")
        );
        assert_eq!(
            compare_href(&[old.clone(), new.clone()]).as_deref(),
            Some("/trace/aa...bb")
        );
        assert_eq!(compare_href(&[old, new.clone(), new]), None);
    }
}
