//! The sampling dashboard (`/sampling?lookback=&slowMs=`): per tail-sampling processor and
//! policy, traces kept vs dropped over time (inline SVG), the share of error traces and of slow
//! traces kept (big numbers and over time), the processor's live counters (pending traces,
//! evictions, late spans), the recent persisted decisions (each opening its trace) and the latest
//! `loadgen sampling-lab` result. It reads `/api/v1/sampling`, `/api/v1/sampling/timeline`,
//! `/api/v1/sampling/decisions` and `/api/v1/sampling/lab` through one server function, and
//! refreshes every [`REFRESH`] in the browser.

use std::time::Duration;

use collector_api::sampling::{
    DecisionCounts, ProcessorTimeline, SamplingLabResult, SamplingTimeline, SlowSource,
    TimelineBucket, human_bytes,
};
use collector_api::v1::{
    Decision, ProcessorSampling, SamplerType, SamplingDecision, SamplingStatsResponse,
};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::format;
use crate::pages::search::error_text;

/// How often the page reloads its data.
pub const REFRESH: Duration = Duration::from_secs(5);
/// The lookbacks offered (Go durations, as the timeline takes them).
const LOOKBACKS: [&str; 5] = ["5m", "15m", "1h", "6h", "24h"];
const DEFAULT_LOOKBACK: &str = "15m";

/// Everything the page shows, read in one round trip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingData {
    pub stats: SamplingStatsResponse,
    pub timeline: SamplingTimeline,
    /// Persisted decisions of this store, most recent first.
    pub decisions: Vec<SamplingDecision>,
    pub lab: Option<SamplingLabResult>,
}

#[server(prefix = "/_viewer", input = leptos::server_fn::codec::Json)]
pub async fn load_sampling(
    lookback: String,
    slow_ms: Option<u64>,
) -> Result<SamplingData, ServerFnError> {
    use crate::api::backend;
    /// Recent decisions listed.
    const RECENT: usize = 25;
    let mut tl = vec![("lookback".to_string(), lookback)];
    if let Some(ms) = slow_ms {
        tl.push(("slowMs".to_string(), ms.to_string()));
    }
    let stats_q = [("limit".to_string(), "0".to_string())];
    let dec_q = [("limit".to_string(), RECENT.to_string())];
    let (stats, timeline, decisions, lab) = tokio::join!(
        backend::get::<SamplingStatsResponse>(&["api", "v1", "sampling"], &stats_q),
        backend::get::<SamplingTimeline>(&["api", "v1", "sampling", "timeline"], &tl),
        backend::get::<collector_api::v1::DecisionsResponse>(
            &["api", "v1", "sampling", "decisions"],
            &dec_q
        ),
        backend::get_optional::<SamplingLabResult>(&["api", "v1", "sampling", "lab"], &[]),
    );
    Ok(SamplingData {
        stats: stats?,
        timeline: timeline?,
        decisions: decisions?.data,
        lab: lab?,
    })
}

#[component]
pub fn SamplingPage() -> impl IntoView {
    let query = use_query_map();
    let lookback = Memo::new(move |_| {
        query
            .read()
            .get("lookback")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_LOOKBACK.to_string())
    });
    let slow_ms = Memo::new(move |_| query.read().get("slowMs").and_then(|v| v.parse().ok()));
    // Bumped every REFRESH by a browser timer (effects never run on the server).
    let tick = RwSignal::new(0u64);
    Effect::new(move |_| {
        if let Ok(h) = set_interval_with_handle(move || tick.update(|t| *t += 1), REFRESH) {
            on_cleanup(move || h.clear());
        }
    });
    let data = LocalResource::new(move || {
        tick.track();
        load_sampling(lookback.get(), slow_ms.get())
    });
    view! {
        <div class="samp-page">
            <header class="samp-head">
                <h1>"Sampling"</h1>
                <nav class="samp-lookback" aria-label="Lookback">
                    {LOOKBACKS.iter().map(|l| {
                        let href = format!("/sampling?lookback={l}");
                        let current = move || lookback.get() == *l;
                        view! { <a href=href class:current=current>{*l}</a> }
                    }).collect_view()}
                </nav>
                <span class="notice">{format!("refreshes every {} s", REFRESH.as_secs())}</span>
            </header>
            <Transition fallback=|| view! { <p class="notice" id="loading">"Loading sampling decisions…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(d) => view! { <Dashboard d/> }.into_any(),
                        Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

#[component]
fn Dashboard(d: SamplingData) -> impl IntoView {
    let tails: Vec<ProcessorSampling> = d
        .stats
        .processors
        .iter()
        .filter(|p| p.processor_type == SamplerType::TailSampling)
        .cloned()
        .collect();
    let heads: Vec<ProcessorSampling> = d
        .stats
        .processors
        .iter()
        .filter(|p| p.processor_type == SamplerType::ProbabilisticSampler)
        .cloned()
        .collect();
    let store = d.timeline.store.clone();
    // Tail samplers whose decisions go to other stores: only their live counters are here.
    let elsewhere: Vec<ProcessorSampling> = tails
        .iter()
        .filter(|p| !d.timeline.processors.iter().any(|t| t.processor == p.id))
        .cloned()
        .collect();
    let no_tail = tails.is_empty();
    let timeline = d.timeline.clone();
    view! {
        {no_tail.then(|| view! {
            <p class="samp-none" id="no-tail-sampler">
                "This collector runs no tail sampler: it keeps every trace (the keep-all default \
                 config), so there are no decisions to show. Start the stack with tail sampling \
                 ("<code>"tracelab up --sampling tail"</code>", collector/config/tail-sampling.yaml) \
                 to see what its policies keep."
            </p>
        })}
        {(!heads.is_empty()).then(|| view! {
            <section class="samp-heads">
                <h2>"Probabilistic samplers"</h2>
                <p class="notice">"They decide per span from the trace id; there are no trace decisions to chart."</p>
                <ul>
                    {heads.into_iter().map(|p| view! {
                        <li data-processor=p.id.clone()>
                            <code>{p.id.clone()}</code>
                            {format!(" — spans kept {}, dropped {}", p.spans_sampled, p.spans_not_sampled)}
                        </li>
                    }).collect_view()}
                </ul>
            </section>
        })}
        {timeline.processors.iter().map(|p| {
            let live = tails.iter().find(|t| t.id == p.processor).cloned();
            view! { <ProcessorPanel p=p.clone() live step_ms=timeline.step_ms/> }
        }).collect_view()}
        {elsewhere.into_iter().map(|p| {
            let stores = if p.stores.is_empty() { "no store".to_string() } else { p.stores.join(", ") };
            let (id, title) = (p.id.clone(), p.id.clone());
            let note = format!(
                "Its decisions are persisted into {stores}; this viewer reads store {store}. \
                 Kept {}, dropped {} since the collector started.",
                p.traces_sampled, p.traces_not_sampled
            );
            view! {
                <section class="samp-processor samp-elsewhere" data-processor=id>
                    <h2><code>{title}</code></h2>
                    <p class="notice">{note}</p>
                    <Counters p/>
                </section>
            }
        }).collect_view()}
        {(!no_tail).then(|| view! { <RecentDecisions decisions=d.decisions.clone()/> })}
        <LabResult lab=d.lab.clone()/>
    }
}

/// `97.5 %`, or `—` when there is nothing to take a share of.
fn share(p: Option<f64>) -> String {
    p.map_or_else(|| "—".to_string(), |v| format!("{v:.1} %"))
}

fn slow_text(p: &ProcessorTimeline) -> String {
    let ms = p.slow_ms;
    match (p.slow_source, &p.slow_policy) {
        (SlowSource::LatencyPolicy, Some(name)) => {
            format!("≥ {ms} ms (the threshold of latency policy {name})")
        }
        (SlowSource::Parameter, _) => format!("≥ {ms} ms (slowMs in the URL)"),
        _ => format!("≥ {ms} ms (default: the processor has no latency policy)"),
    }
}

#[component]
fn ProcessorPanel(
    p: ProcessorTimeline,
    live: Option<ProcessorSampling>,
    step_ms: i64,
) -> impl IntoView {
    let t = p.total;
    let title = if p.processor.is_empty() {
        "decisions recorded before schema 3 (no processor named)".to_string()
    } else {
        p.processor.clone()
    };
    let history_only = !p.configured;
    let slow = slow_text(&p);
    view! {
        <section class="samp-processor" data-processor=p.processor.clone()>
            <h2><code>{title}</code>
                {history_only.then(|| view! { <span class="badge warn">"not running now: history only"</span> })}
                {live.as_ref().map(|l| view! { <span class="samp-pipelines">{format!("pipelines {}", l.pipelines.join(", "))}</span> })}
            </h2>
            <div class="samp-big">
                <Big label="kept" class="samp-kept" value=t.kept.to_string() data=t.kept.to_string()
                    sub=share(t.kept_pct()) + " of traces"/>
                <Big label="dropped" class="samp-dropped" value=t.dropped.to_string() data=t.dropped.to_string()
                    sub=format!("{} decided", t.traces())/>
                <Big label="error traces kept" class="samp-error-share" value=share(t.error_kept_pct())
                    data=t.error_kept_pct().map(|v| format!("{v:.1}")).unwrap_or_default()
                    sub=format!("{} of {} error traces", t.error_kept, t.error_traces)/>
                <Big label="slow traces kept" class="samp-slow-share" value=share(t.slow_kept_pct())
                    data=t.slow_kept_pct().map(|v| format!("{v:.1}")).unwrap_or_default()
                    sub=format!("{} of {} slow traces, {slow}", t.slow_kept, t.slow_traces)/>
                {live.clone().map(|l| view! {
                    <Big label="pending" class="samp-pending" value=l.pending_traces.to_string()
                        data=l.pending_traces.to_string() sub="traces waiting for decision_wait".to_string()/>
                })}
            </div>
            <div class="samp-charts">
                <figure>
                    <figcaption>
                        {format!("Traces per {} — ", step_text(step_ms))}
                        <span class="samp-key kept">"■ kept"</span>" "<span class="samp-key dropped">"■ dropped"</span>
                    </figcaption>
                    <KeptChart buckets=p.buckets.clone() width=720.0 height=150.0 axis=true/>
                </figure>
                <figure>
                    <figcaption>"Share kept of error and slow traces"</figcaption>
                    <ShareChart buckets=p.buckets.clone()/>
                </figure>
            </div>
            <table class="samp-policies">
                <thead><tr>
                    <th>"policy"</th><th>"type"</th><th class="num">"kept"</th><th class="num">"dropped"</th>
                    <th class="num">"error traces kept"</th><th class="num">"slow traces kept"</th><th>"over time"</th>
                </tr></thead>
                <tbody>
                    {p.policies.into_iter().map(|pol| {
                        let name = pol.policy.clone().unwrap_or_else(|| "no policy matched (dropped)".to_string());
                        let c = pol.total;
                        view! {
                            <tr class="samp-policy" data-policy=pol.policy.clone().unwrap_or_default()>
                                <td class="name">{name}</td>
                                <td>{pol.policy_type.clone().unwrap_or_default()}</td>
                                <td class="num kept">{c.kept}</td>
                                <td class="num dropped">{c.dropped}</td>
                                <td class="num">{ratio(c.error_kept, c.error_traces)}</td>
                                <td class="num">{ratio(c.slow_kept, c.slow_traces)}</td>
                                <td><KeptChart buckets=pol.buckets width=240.0 height=30.0 axis=false/></td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
            {live.map(|l| view! { <Counters p=l/> })}
        </section>
    }
}

/// `15 s`, `2 min`, `1 h`: a bucket's width.
fn step_text(step_ms: i64) -> String {
    let s = step_ms.max(0) / 1000;
    match s {
        _ if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        _ if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        _ => format!("{s} s"),
    }
}

fn ratio(n: u64, of: u64) -> String {
    if of == 0 {
        "—".to_string()
    } else {
        format!("{n} of {of}")
    }
}

#[component]
fn Big(
    label: &'static str,
    class: &'static str,
    value: String,
    data: String,
    sub: String,
) -> impl IntoView {
    view! {
        <div class=format!("samp-number {class}") data-value=data>
            <span class="value">{value}</span>
            <span class="label">{label}</span>
            <span class="sub">{sub}</span>
        </div>
    }
}

/// The processor's cumulative counters since the collector started (`/api/v1/sampling`).
#[component]
fn Counters(p: ProcessorSampling) -> impl IntoView {
    let rows = [
        ("traces kept", p.traces_sampled),
        ("traces dropped", p.traces_not_sampled),
        ("pending now", p.pending_traces),
        ("decided early (num_traces reached)", p.traces_evicted_early),
        ("span cap reached", p.traces_span_capped),
        ("late spans forwarded", p.late_spans_forwarded),
        ("late spans dropped", p.late_spans_dropped),
        ("spans kept", p.spans_sampled),
        ("spans dropped", p.spans_not_sampled),
    ];
    view! {
        <details class="samp-counters">
            <summary>"Counters since the collector started"</summary>
            <dl>
                {rows.into_iter().map(|(k, v)| view! { <div><dt>{k}</dt><dd>{v}</dd></div> }).collect_view()}
            </dl>
        </details>
    }
}

const KEPT_COLOUR: &str = "#16a34a";
const DROPPED_COLOUR: &str = "#d1d5db";

/// Stacked bars per bucket: kept (green) under dropped (grey).
#[component]
fn KeptChart(buckets: Vec<TimelineBucket>, width: f64, height: f64, axis: bool) -> impl IntoView {
    let (left, bottom) = if axis { (36.0, 18.0) } else { (0.0, 0.0) };
    let plot_w = width - left - 4.0;
    let plot_h = height - bottom - 4.0;
    let max = buckets
        .iter()
        .map(|b| b.counts.traces())
        .max()
        .unwrap_or(0)
        .max(1);
    let n = buckets.len().max(1) as f64;
    let slot = plot_w / n;
    let bar = (slot * 0.8).max(1.0);
    let y = move |v: u64| 4.0 + plot_h - v as f64 / max as f64 * plot_h;
    let first = buckets.first().map(|b| b.start_ms).unwrap_or(0);
    let last = buckets.last().map(|b| b.start_ms).unwrap_or(0);
    view! {
        <svg class="samp-chart" class:samp-spark=!axis viewBox=format!("0 0 {width} {height}")
            width=if axis { None } else { Some(width) } height=if axis { None } else { Some(height) }
            role="img" aria-label="Traces kept and dropped over time">
            {axis.then(|| view! {
                <line x1=left y1=4.0 + plot_h x2=width - 4.0 y2=4.0 + plot_h class="axis"/>
                <text x=left - 4.0 y=12.0 class="tick" text-anchor="end">{max}</text>
                <text x=left - 4.0 y=4.0 + plot_h class="tick" text-anchor="end">"0"</text>
                <text x=left y=height - 4.0 class="tick">{format::clock_us(first.max(0) as u64 * 1000)}</text>
                <text x=width - 4.0 y=height - 4.0 class="tick" text-anchor="end">{format::clock_us(last.max(0) as u64 * 1000)}</text>
            })}
            {buckets.iter().enumerate().filter(|(_, b)| b.counts.traces() > 0).map(|(i, b)| {
                let c = b.counts;
                let x = left + i as f64 * slot + (slot - bar) / 2.0;
                let tip = format!("{}: {} kept, {} dropped", format::clock_us(b.start_ms.max(0) as u64 * 1000), c.kept, c.dropped);
                view! {
                    <g class="bucket" data-kept=c.kept data-dropped=c.dropped>
                        <title>{tip}</title>
                        <rect x=x y=y(c.kept) width=bar height=y(0) - y(c.kept) fill=KEPT_COLOUR/>
                        <rect x=x y=y(c.traces()) width=bar height=y(c.kept) - y(c.traces()) fill=DROPPED_COLOUR/>
                    </g>
                }
            }).collect_view()}
        </svg>
    }
}

/// Error-kept and slow-kept percentages per bucket, drawn where there were such traces.
#[component]
fn ShareChart(buckets: Vec<TimelineBucket>) -> impl IntoView {
    const W: f64 = 720.0;
    const H: f64 = 150.0;
    const LEFT: f64 = 40.0;
    let plot_w = W - LEFT - 4.0;
    let plot_h = H - 22.0;
    let n = buckets.len().max(1) as f64;
    let x = move |i: usize| LEFT + (i as f64 + 0.5) * plot_w / n;
    let y = move |pct: f64| 4.0 + plot_h - pct / 100.0 * plot_h;
    let series = |f: fn(&DecisionCounts) -> Option<f64>| -> Vec<(f64, f64)> {
        buckets
            .iter()
            .enumerate()
            .filter_map(|(i, b)| f(&b.counts).map(|p| (x(i), y(p))))
            .collect()
    };
    let errors = series(DecisionCounts::error_kept_pct);
    let slow = series(DecisionCounts::slow_kept_pct);
    let line = |pts: &[(f64, f64)]| {
        pts.iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let dots = |pts: Vec<(f64, f64)>, class: &'static str| {
        pts.into_iter()
            .map(|(cx, cy)| view! { <circle cx=cx cy=cy r=3.0 class=class/> })
            .collect_view()
    };
    let (err_line, slow_line) = (line(&errors), line(&slow));
    view! {
        <svg class="samp-chart" viewBox=format!("0 0 {W} {H}") role="img" aria-label="Share of error and slow traces kept">
            <line x1=LEFT y1=y(0.0) x2=W - 4.0 y2=y(0.0) class="axis"/>
            <line x1=LEFT y1=y(100.0) x2=W - 4.0 y2=y(100.0) class="grid"/>
            <text x=LEFT - 4.0 y=y(100.0) + 4.0 class="tick" text-anchor="end">"100 %"</text>
            <text x=LEFT - 4.0 y=y(0.0) class="tick" text-anchor="end">"0 %"</text>
            <polyline points=err_line class="share err"/>
            <polyline points=slow_line class="share slow"/>
            {dots(errors, "share-dot err")}
            {dots(slow, "share-dot slow")}
            <text x=LEFT + 6.0 y=H - 4.0 class="legend err">"● error traces kept"</text>
            <text x=LEFT + 150.0 y=H - 4.0 class="legend slow">"● slow traces kept"</text>
        </svg>
    }
}

#[component]
fn RecentDecisions(decisions: Vec<SamplingDecision>) -> impl IntoView {
    view! {
        <section class="samp-recent">
            <h2>"Recent decisions"</h2>
            {decisions.is_empty().then(|| view! {
                <p class="notice">"No decision persisted yet: a trace is decided decision_wait after its first span."</p>
            })}
            <table class="samp-decisions">
                <thead><tr>
                    <th>"decided"</th><th>"trace"</th><th>"decision"</th><th>"policy"</th>
                    <th>"error"</th><th class="num">"duration"</th><th class="num">"spans"</th><th>"processor"</th>
                </tr></thead>
                <tbody>
                    {decisions.into_iter().map(|d| {
                        let kept = d.decision == Decision::Sampled;
                        let href = format!("/trace/{}", d.trace_id);
                        view! {
                            <tr class="samp-decision" class:kept=kept data-trace-id=d.trace_id.clone()>
                                <td>{format::timestamp_us(d.decided_at_ms.max(0) as u64 * 1000)}</td>
                                <td><a href=href><code>{d.trace_id.chars().take(16).collect::<String>()}</code></a></td>
                                <td class="decision">{if kept { "kept" } else { "dropped" }}</td>
                                <td>{d.policy.clone().unwrap_or_else(|| "—".to_string())}</td>
                                <td class:errors=d.error>{if d.error { "error" } else { "" }}</td>
                                <td class="num">{format::duration_us(d.duration_us)}</td>
                                <td class="num">{d.span_count}</td>
                                <td><code>{d.processor.clone()}</code></td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

#[component]
fn LabResult(lab: Option<SamplingLabResult>) -> impl IntoView {
    let Some(r) = lab else {
        return view! {
            <section class="samp-lab" id="lab-none">
                <h2>"Sampling lab"</h2>
                <p class="notice">
                    "No sampling-lab result in this collector yet. Start the stack with "
                    <code>"tracelab up --sampling lab"</code>" and run "<code>"make sampling-lab"</code>
                    " (it uses the running lab stack) or "<code>"loadgen sampling-lab"</code>
                    ": it sends one request sequence through five strategies side by side and stores what each kept here."
                </p>
            </section>
        }
        .into_any();
    };
    let t = r.truth.clone();
    let mix = r
        .mix
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let head = format!(
        "{} requests at {}/s (seed {}, mix {mix}), finished {}: {} traces, {} error traces, {} slow (≥ {} ms)",
        r.requests,
        r.rate,
        r.seed,
        format::timestamp_us(r.finished_at_ms.max(0) as u64 * 1000),
        t.traces,
        t.error_traces,
        t.slow_traces,
        r.slow_ms
    );
    view! {
        <section class="samp-lab" id="lab-result">
            <h2>"Latest sampling-lab result"</h2>
            <p>{head}</p>
            <table class="samp-lab-table">
                <thead><tr>
                    <th>"strategy"</th><th class="num">"traces kept"</th><th class="num">"spans kept"</th>
                    <th class="num">"errors kept"</th><th class="num">"slow kept"</th><th class="num">"partial"</th>
                    <th class="num">"stored"</th><th class="num">"per 1M req"</th><th>"how"</th>
                </tr></thead>
                <tbody>
                    {r.strategies.into_iter().map(|s| view! {
                        <tr data-strategy=s.name.clone()>
                            <td class="name">{s.name.clone()}</td>
                            <td class="num">{format!("{} ({:.1} %)", s.traces_kept, s.traces_kept_pct)}</td>
                            <td class="num">{format!("{} ({:.1} %)", s.spans_kept, s.spans_kept_pct)}</td>
                            <td class="num errors-kept">{format!("{} ({:.1} %)", s.error_traces_kept, s.error_traces_kept_pct)}</td>
                            <td class="num">{format!("{} ({:.1} %)", s.slow_traces_kept, s.slow_traces_kept_pct)}</td>
                            <td class="num">{s.partial_traces}</td>
                            <td class="num">{human_bytes(s.bytes_stored as f64)}</td>
                            <td class="num">{human_bytes(s.bytes_per_million_requests)}</td>
                            <td>{s.description.clone()}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_widths_and_shares_read_plainly() {
        assert_eq!(step_text(15_000), "15 s");
        assert_eq!(step_text(120_000), "2 min");
        assert_eq!(step_text(3_600_000), "1 h");
        assert_eq!(step_text(90_000), "90 s");
        assert_eq!(share(Some(100.0)), "100.0 %");
        assert_eq!(share(None), "—");
        assert_eq!(ratio(0, 0), "—");
        assert_eq!(ratio(2, 3), "2 of 3");
    }
}
