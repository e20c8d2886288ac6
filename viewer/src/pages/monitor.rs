//! The RED pages (Jaeger UI's Monitor tab URLs), over the collector's
//! `/api/v1/metrics/red` (the spanmetrics connector's time series):
//!
//! - `/monitor`: every service's request rate, error rate and p95 over its entry spans, each with
//!   a sparkline; a row links to the service's page.
//! - `/monitor/{service}`: charts of the service's rate, error rate and latency p50/p95/p99 over
//!   time, exemplar dots on the latency chart that open the trace behind them
//!   (`/trace/{id}?span={id}`), then a table per operation with its own sparklines.
//!
//! `?lookback=15m` (default) or `1h`. Rendered on the server; once hydrated the page reloads its
//! data every [`REFRESH`] without a page load.

use std::time::Duration;

use collector_api::metrics::{RedExemplar, RedPoint, RedResponse, RedSeries};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::chart::{Frame, Scale, nice_max};
use crate::format;
use crate::model::service_colour;
use crate::pages::search::error_text;

/// The lookbacks offered: (value, label, step asked for — about a hundred points a chart).
pub const LOOKBACKS: [(&str, &str, &str); 2] = [
    ("15m", "Last 15 minutes", "10s"),
    ("1h", "Last hour", "30s"),
];

/// How often a hydrated page reloads its data (the connector's default bucket width).
pub const REFRESH: Duration = Duration::from_secs(10);

/// RED of every service (`service: None`) or of one service and its operations.
#[server(prefix = "/_viewer", input = Json)]
pub async fn load_red(
    service: Option<String>,
    lookback: String,
) -> Result<RedResponse, ServerFnError> {
    let step = LOOKBACKS
        .iter()
        .find(|l| l.0 == lookback)
        .map(|l| l.2)
        .ok_or_else(|| ServerFnError::new(format!("lookback {lookback:?}: expected 15m or 1h")))?;
    let mut params = vec![
        ("lookback".to_string(), lookback),
        ("step".to_string(), step.to_string()),
    ];
    if let Some(s) = service {
        params.push(("service".to_string(), s));
    }
    crate::api::backend::get(&["api", "v1", "metrics", "red"], &params).await
}

/// The `lookback` of the URL when it is one offered, else the first.
fn lookback_of(v: Option<String>) -> String {
    v.filter(|v| LOOKBACKS.iter().any(|l| l.0 == v))
        .unwrap_or_else(|| LOOKBACKS[0].0.to_string())
}

fn lookback_label(v: &str) -> &'static str {
    LOOKBACKS
        .iter()
        .find(|l| l.0 == v)
        .map_or(LOOKBACKS[0].1, |l| l.1)
}

/// A counter that ticks every [`REFRESH`] in the browser (effects never run on the server).
fn use_refresh() -> ReadSignal<u32> {
    let (tick, set_tick) = signal(0u32);
    Effect::new(move |_| {
        if let Ok(h) = set_interval_with_handle(move || set_tick.update(|t| *t += 1), REFRESH) {
            on_cleanup(move || h.clear());
        }
    });
    tick
}

/// Per second, or per minute below 0.1/s (a workshop's few clicks would read `0.00/s`).
pub fn fmt_rate(r: f64) -> String {
    match r {
        r if r >= 10.0 => format!("{r:.0}/s"),
        r if r >= 1.0 => format!("{r:.1}/s"),
        r if r >= 0.1 => format!("{r:.2}/s"),
        r if r > 0.0 => format!("{:.1}/min", r * 60.0),
        _ => "0/s".into(),
    }
}

/// An error-rate axis label (percent).
fn fmt_percent(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.1} %")
    } else {
        format!("{v:.0} %")
    }
}

pub fn fmt_share(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{:.1} %", v * 100.0))
}

pub fn fmt_ms(v: Option<f64>) -> String {
    v.map_or_else(
        || "—".into(),
        |ms| format::duration_us((ms * 1000.0) as u64),
    )
}

/// (middle of the interval, value) of every point: where a line chart places it.
fn series_of(
    r: &RedResponse,
    s: &RedSeries,
    f: impl Fn(&RedPoint) -> Option<f64>,
) -> Vec<(u64, Option<f64>)> {
    s.points
        .iter()
        .map(|p| (p.time_ms + r.step_ms / 2, f(p)))
        .collect()
}

#[component]
fn LookbackPicker(base: String, lookback: Memo<String>) -> impl IntoView {
    view! {
        <nav class="lookbacks" aria-label="Lookback">
            {LOOKBACKS.iter().map(|(v, label, _)| {
                let href = format!("{base}?lookback={v}");
                view! {
                    <a href=href class:active=move || lookback.get() == *v data-lookback=*v>{*label}</a>
                }
            }).collect_view()}
        </nav>
    }
}

/// A small line without axes; `max` fixes the top (shared scale), else the series' own maximum.
#[component]
fn Spark(
    points: Vec<(u64, Option<f64>)>,
    t0: u64,
    t1: u64,
    #[prop(optional)] max: Option<f64>,
    #[prop(optional)] class: &'static str,
) -> impl IntoView {
    const FRAME: Frame = Frame::sparkline(120.0, 28.0);
    let top = max.unwrap_or_else(|| points.iter().filter_map(|p| p.1).fold(0.0, f64::max));
    let scale = Scale::new(FRAME, t0, t1, top * 1.1);
    let d = scale.path(&points);
    view! {
        <svg class=format!("spark {class}") viewBox="0 0 120 28" width="120" height="28" aria-hidden="true">
            <line x1=0 y1=FRAME.plot_bottom() x2=120 y2=FRAME.plot_bottom() class="base"/>
            <path d=d/>
        </svg>
    }
}

#[component]
pub fn MonitorPage() -> impl IntoView {
    let query = use_query_map();
    let lookback = Memo::new(move |_| lookback_of(query.read().get("lookback")));
    let tick = use_refresh();
    let data = Resource::new(
        move || (lookback.get(), tick.get()),
        |(l, _)| load_red(None, l),
    );
    view! {
        <div class="monitor" data-refreshes=move || tick.get()>
            <header class="monitor-head">
                <h1>"Services"</h1>
                <span class="hint">"request rate, error rate and p95 of each service's server and consumer spans"</span>
                <LookbackPicker base="/monitor".to_string() lookback/>
            </header>
            <Transition fallback=|| view! { <p class="notice">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(r) if r.services.is_empty() => view! {
                            <p class="notice">{format!(
                                "No spans in the last {}. Place an order (curl the gateway, or run the load generator).",
                                lookback.get_untracked()
                            )}</p>
                        }.into_any(),
                        Ok(r) => view! { <Overview r/> }.into_any(),
                        Err(e) => view! { <p class="notice" role="alert">{error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

#[component]
fn Overview(r: RedResponse) -> impl IntoView {
    let (t0, t1) = (r.start_ms, r.end_ms);
    // One latency scale for all rows, so a slow service's sparkline stands out.
    let p95_max = r
        .services
        .iter()
        .flat_map(|s| s.points.iter().filter_map(|p| p.p95_ms))
        .fold(0.0, f64::max);
    let rows = r
        .services
        .iter()
        .map(|s| {
            let href = format!("/monitor/{}", s.service);
            let name = if s.overflow {
                "(series over the limit)".to_string()
            } else {
                s.service.clone()
            };
            let rate = series_of(&r, s, |p| Some(p.rate));
            let err = series_of(&r, s, |p| p.error_rate);
            let p95 = series_of(&r, s, |p| p.p95_ms);
            view! {
                <tr class="red-row" data-service=s.service.clone() data-rate=s.total.rate.to_string()>
                    <td class="name">
                        <span class="chip" style:background=service_colour(&s.service)></span>
                        <a href=href>{name}</a>
                        {(!s.entry_spans).then(|| view! { <span class="hint" title="no server or consumer spans: all its spans">" (all spans)"</span> })}
                    </td>
                    <td class="num">{fmt_rate(s.total.rate)}</td>
                    <td><Spark points=rate t0 t1 class="rate"/></td>
                    <td class="num" class:bad={s.total.errors > 0}>{fmt_share(s.total.error_rate)}</td>
                    <td><Spark points=err t0 t1 max=1.0 class="err"/></td>
                    <td class="num">{fmt_ms(s.total.p95_ms)}</td>
                    <td><Spark points=p95 t0 t1 max=p95_max class="lat"/></td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table class="red-table">
            <thead><tr>
                <th>"Service"</th><th colspan="2">"Requests"</th><th colspan="2">"Error rate"</th><th colspan="2">"p95 latency"</th>
            </tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

#[component]
pub fn MonitorServicePage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let service = Memo::new(move |_| params.read().get("service").unwrap_or_default());
    let lookback = Memo::new(move |_| lookback_of(query.read().get("lookback")));
    let tick = use_refresh();
    let data = Resource::new(
        move || (service.get(), lookback.get(), tick.get()),
        |(s, l, _)| load_red(Some(s), l),
    );
    view! {
        <div class="monitor" data-refreshes=move || tick.get()>
            <header class="monitor-head">
                <a href="/monitor">"All services"</a>
                <h1>
                    <span class="chip" style:background=move || service_colour(&service.get())></span>
                    {move || service.get()}
                </h1>
                <a href=move || format!("/search?service={}", service.get())>"Find traces"</a>
                <LookbackPicker base=format!("/monitor/{}", service.get_untracked()) lookback/>
            </header>
            <Transition fallback=|| view! { <p class="notice">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(r) => match r.services.first().cloned() {
                            Some(s) => {
                                let label = lookback_label(&lookback.get_untracked());
                                view! { <ServiceRed r=r.clone() s label/> }.into_any()
                            }
                            None => view! {
                                <p class="notice">{format!(
                                    "No spans of {} in the last {}.",
                                    service.get_untracked(),
                                    lookback.get_untracked()
                                )}</p>
                            }.into_any(),
                        },
                        Err(e) => view! { <p class="notice" role="alert">{error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

const CHART: Frame = Frame {
    width: 440.0,
    height: 180.0,
    left: 56.0,
    right: 10.0,
    top: 10.0,
    bottom: 22.0,
};

/// Axes, labels and grid of a time chart.
fn axes(scale: &Scale, label: fn(f64) -> String) -> impl IntoView + use<> {
    let f = scale.frame;
    let (top, bottom) = (f.top, f.plot_bottom());
    let mid = (top + bottom) / 2.0;
    view! {
        <line x1=f.left y1=bottom x2=f.plot_right() y2=bottom class="axis"/>
        <line x1=f.left y1=top x2=f.plot_right() y2=top class="grid"/>
        <line x1=f.left y1=mid x2=f.plot_right() y2=mid class="grid"/>
        <text x=f.left - 6.0 y=top + 4.0 class="tick" text-anchor="end">{label(scale.y_max)}</text>
        <text x=f.left - 6.0 y=mid + 4.0 class="tick" text-anchor="end">{label(scale.y_max / 2.0)}</text>
        <text x=f.left - 6.0 y=bottom + 4.0 class="tick" text-anchor="end">"0"</text>
        <text x=f.left y=f.height - 6.0 class="tick">{format::clock_us(scale.t0 * 1000)}</text>
        <text x=f.plot_right() y=f.height - 6.0 class="tick" text-anchor="end">{format::clock_us(scale.t1 * 1000)}</text>
    }
}

#[component]
fn ServiceRed(r: RedResponse, s: RedSeries, label: &'static str) -> impl IntoView {
    let (t0, t1) = (r.start_ms, r.end_ms);
    let rate = series_of(&r, &s, |p| Some(p.rate));
    let err = series_of(&r, &s, |p| p.error_rate.map(|e| e * 100.0));
    let p50 = series_of(&r, &s, |p| p.p50_ms);
    let p95 = series_of(&r, &s, |p| p.p95_ms);
    let p99 = series_of(&r, &s, |p| p.p99_ms);
    let top = |v: &[(u64, Option<f64>)]| nice_max(v.iter().filter_map(|p| p.1).fold(0.0, f64::max));
    let rate_scale = Scale::new(CHART, t0, t1, top(&rate));
    let err_scale = Scale::new(CHART, t0, t1, top(&err).min(100.0));
    // The dots must fit: the slowest exemplar can lie above every percentile.
    let slowest = s
        .exemplars
        .iter()
        .map(|e| e.duration_ms)
        .fold(0.0, f64::max);
    let lat_max = nice_max(top(&p99).max(slowest));
    let lat_scale = Scale::new(CHART, t0, t1, lat_max);
    let ms = |v: f64| format::duration_us((v * 1000.0) as u64);
    let summary = format!(
        "{} calls, {} · {} errors · p50 {} · p95 {} · p99 {} ({})",
        s.total.calls,
        fmt_rate(s.total.rate),
        fmt_share(s.total.error_rate),
        fmt_ms(s.total.p50_ms),
        fmt_ms(s.total.p95_ms),
        fmt_ms(s.total.p99_ms),
        label.to_lowercase(),
    );
    let note = (!s.entry_spans)
        .then_some(" (this service has no server or consumer spans: all of its spans)");
    let dots = s
        .exemplars
        .iter()
        .cloned()
        .map(|e| exemplar_dot(&lat_scale, e))
        .collect_view();
    view! {
        <p class="red-summary">{summary}{note}</p>
        <div class="red-charts">
            <figure>
                <figcaption>"Requests per second"</figcaption>
                <svg class="red-chart" data-chart="rate" viewBox="0 0 440 180" role="img" aria-label="Requests per second">
                    {axes(&rate_scale, fmt_rate)}
                    <path class="line rate" d=rate_scale.path(&rate)/>
                </svg>
            </figure>
            <figure>
                <figcaption>"Error rate"</figcaption>
                <svg class="red-chart" data-chart="errors" viewBox="0 0 440 180" role="img" aria-label="Error rate">
                    {axes(&err_scale, fmt_percent)}
                    <path class="line err" d=err_scale.path(&err)/>
                </svg>
            </figure>
            <figure>
                <figcaption>
                    "Latency "
                    <span class="key p50">"p50"</span>" "
                    <span class="key p95">"p95"</span>" "
                    <span class="key p99">"p99"</span>
                    " · dots: slowest and error spans, click to open"
                </figcaption>
                <svg class="red-chart" data-chart="latency" viewBox="0 0 440 180" role="img" aria-label="Latency percentiles">
                    {axes(&lat_scale, ms)}
                    <path class="line p50" d=lat_scale.path(&p50)/>
                    <path class="line p95" d=lat_scale.path(&p95)/>
                    <path class="line p99" d=lat_scale.path(&p99)/>
                    <g class="exemplars">{dots}</g>
                </svg>
            </figure>
        </div>
        <Operations r s_service=s.service.clone()/>
    }
}

fn exemplar_dot(scale: &Scale, e: RedExemplar) -> impl IntoView + use<> {
    let href = format!("/trace/{}?span={}", e.trace_id, e.span_id);
    let tip = format!(
        "{} — {}{}, trace {}",
        e.operation,
        fmt_ms(Some(e.duration_ms)),
        if e.error { ", error" } else { "" },
        &e.trace_id[..e.trace_id.len().min(12)]
    );
    let (cx, cy) = (scale.x(e.time_ms), scale.y(e.duration_ms));
    // The <g> makes the macro build an SVG <a>, not an HTML one.
    view! {
        <g>
            <a href=href class="exemplar" class:err=e.error data-trace-id=e.trace_id.clone()
                data-span-id=e.span_id.clone() data-duration-ms=e.duration_ms.to_string()>
                <circle cx=cx cy=cy r="4.5"/>
                <title>{tip}</title>
            </a>
        </g>
    }
}

#[component]
fn Operations(r: RedResponse, s_service: String) -> impl IntoView {
    let (t0, t1) = (r.start_ms, r.end_ms);
    let p95_max = r
        .operations
        .iter()
        .flat_map(|o| o.points.iter().filter_map(|p| p.p95_ms))
        .fold(0.0, f64::max);
    let rows = r
        .operations
        .iter()
        .map(|o| {
            let name = o
                .operation
                .clone()
                .unwrap_or_else(|| "(operations over the series limit)".into());
            let search = o.operation.as_ref().map(|op| {
                format!(
                    "/search?service={}&operation={}",
                    encode(&s_service),
                    encode(op)
                )
            });
            let rate = series_of(&r, o, |p| Some(p.rate));
            let err = series_of(&r, o, |p| p.error_rate);
            let p95 = series_of(&r, o, |p| p.p95_ms);
            view! {
                <tr class="op-row" data-operation=o.operation.clone().unwrap_or_default()>
                    <td class="name">{match search {
                        Some(href) => view! { <a href=href title="Find its traces">{name}</a> }.into_any(),
                        None => view! { <span>{name}</span> }.into_any(),
                    }}</td>
                    <td class="kind">{o.span_kind.clone().unwrap_or_default()}</td>
                    <td class="num">{fmt_rate(o.total.rate)}</td>
                    <td><Spark points=rate t0 t1 class="rate"/></td>
                    <td class="num" class:bad={o.total.errors > 0}>{fmt_share(o.total.error_rate)}</td>
                    <td><Spark points=err t0 t1 max=1.0 class="err"/></td>
                    <td class="num">{fmt_ms(o.total.p95_ms)}</td>
                    <td><Spark points=p95 t0 t1 max=p95_max class="lat"/></td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <h2 class="ops-title">"Operations"</h2>
        <table class="red-table ops">
            <thead><tr>
                <th>"Operation"</th><th>"Kind"</th><th colspan="2">"Requests"</th>
                <th colspan="2">"Error rate"</th><th colspan="2">"p95 latency"</th>
            </tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

/// Percent-encodes a query parameter value (service and operation names have spaces and `/`).
fn encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_at_a_glance() {
        assert_eq!(fmt_rate(0.0), "0/s");
        assert_eq!(fmt_rate(0.0333), "2.0/min");
        assert_eq!(fmt_rate(0.25), "0.25/s");
        assert_eq!(fmt_rate(2.25), "2.2/s");
        assert_eq!(fmt_rate(48.6), "49/s");
        assert_eq!(fmt_share(None), "—");
        assert_eq!(fmt_share(Some(0.05)), "5.0 %");
        assert_eq!(fmt_ms(Some(1210.0)), "1.21s");
        assert_eq!(fmt_ms(None), "—");
    }

    #[test]
    fn lookbacks_and_encoding() {
        assert_eq!(lookback_of(None), "15m");
        assert_eq!(lookback_of(Some("1h".into())), "1h");
        assert_eq!(lookback_of(Some("7d".into())), "15m");
        assert_eq!(encode("POST /orders"), "POST%20%2Forders");
    }
}
