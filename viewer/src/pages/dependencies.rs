//! The service map (`/dependencies?lookback=`, Jaeger UI's URL): the collector's
//! `/api/v1/dependencies` drawn as inline SVG with the layered layout of [`crate::map_layout`] —
//! services as boxes (request rate, error rate, p95 of their entry spans), Kafka topics as pills,
//! calls as arrows (Kafka hand-offs dashed) labelled with calls per second, error rate and p95.
//! A service's box links to its RED page `/monitor/{service}`. The hydrated page re-reads the map
//! every [`REFRESH`] without a page load (a `Transition`, so the old map stays until the new one
//! is there).

use std::time::Duration;

use collector_api::dependencies::{DependenciesResponse, EdgeKind, MapEdge, MapNode, NodeKind};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;
use leptos_router::hooks::use_query_map;

use crate::format;
use crate::map_layout::{self, NodeBox};
use crate::model::service_colour;

/// The lookback menu: URL value, label, milliseconds.
pub const LOOKBACKS: [(&str, &str, u64); 4] = [
    ("5m", "Last 5 minutes", 300_000),
    ("15m", "Last 15 minutes", 900_000),
    ("1h", "Last hour", 3_600_000),
    ("24h", "Last 24 hours", 86_400_000),
];
pub const DEFAULT_LOOKBACK: &str = "1h";
/// How often the hydrated page re-reads the map.
pub const REFRESH: Duration = Duration::from_secs(5);

const NODE_W: f64 = 210.0;
const NODE_H: f64 = 68.0;
const TOPIC_H: f64 = 52.0;

/// The menu entry a `lookback` parameter names (the default for anything else).
pub fn lookback_entry(v: Option<&str>) -> (&'static str, &'static str, u64) {
    LOOKBACKS
        .iter()
        .copied()
        .find(|(k, _, _)| Some(*k) == v)
        .unwrap_or(LOOKBACKS[2])
}

#[server(prefix = "/_viewer", input = Json)]
pub async fn load_service_map(lookback_ms: u64) -> Result<DependenciesResponse, ServerFnError> {
    crate::api::backend::get(
        &["api", "v1", "dependencies"],
        &[("lookback".to_string(), lookback_ms.to_string())],
    )
    .await
}

/// `3.2/s`, `12/min` or `4/h`: a rate people can read whatever the traffic.
pub fn rate(per_s: f64) -> String {
    let fmt = |v: f64| {
        if v >= 10.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    };
    if per_s >= 0.95 {
        format!("{}/s", fmt(per_s))
    } else if per_s * 60.0 >= 0.95 {
        format!("{}/min", fmt(per_s * 60.0))
    } else {
        format!("{}/h", fmt(per_s * 3600.0))
    }
}

/// `0 %`, `<0.1 %`, `12.5 %`.
pub fn percent(ratio: f64) -> String {
    let p = ratio * 100.0;
    if p == 0.0 {
        "0 %".into()
    } else if p < 0.1 {
        "<0.1 %".into()
    } else {
        format!("{p:.1} %")
    }
}

/// A path segment, percent-encoded (service names may hold anything).
fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[component]
pub fn DependenciesPage() -> impl IntoView {
    let query = use_query_map();
    let lookback = Memo::new(move |_| lookback_entry(query.read().get("lookback").as_deref()));
    let (tick, set_tick) = signal(0u64);
    // Effects run in the browser only: the server renders one map, the hydrated page polls.
    Effect::new(move |_| {
        if let Ok(h) = set_interval_with_handle(move || set_tick.update(|t| *t += 1), REFRESH) {
            on_cleanup(move || h.clear());
        }
    });
    let map = Resource::new(
        move || (lookback.get().2, tick.get()),
        |(ms, _)| load_service_map(ms),
    );
    view! {
        <div class="map-page">
            <header class="map-head">
                <h1>"Service map"</h1>
                <nav class="lookbacks" aria-label="Lookback">
                    {LOOKBACKS.iter().map(|(k, label, _)| {
                        let k = *k;
                        view! {
                            <a href=format!("/dependencies?lookback={k}") data-lookback=k
                                class:active=move || lookback.get().0 == k>{*label}</a>
                        }
                    }).collect_view()}
                </nav>
            </header>
            <Transition fallback=|| view! { <p class="notice">"Loading the service map…"</p> }>
                {move || Suspend::new(async move {
                    match map.await {
                        Ok(m) => view! { <MapView map=m refreshes=tick.get_untracked()/> }.into_any(),
                        Err(e) => view! { <p class="notice error">{format!("The map could not be read: {e}")}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

#[component]
fn MapView(map: DependenciesResponse, refreshes: u64) -> impl IntoView {
    let caption = format!(
        "{} services, {} topics, {} edges · {} – {} UTC · updated {}",
        map.nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Service)
            .count(),
        map.nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Topic)
            .count(),
        map.edges.len(),
        format::clock_us(map.start_us),
        format::clock_us(map.end_us),
        format::clock_us(map.end_us),
    );
    if map.nodes.is_empty() {
        return view! {
            <p class="notice" id="map-empty" data-refreshes=refreshes>
                "No calls in this window. Place an order (curl the gateway, or run the load generator) or widen the lookback."
            </p>
        }
        .into_any();
    }
    let boxes: Vec<NodeBox> = map
        .nodes
        .iter()
        .map(|n| NodeBox {
            id: n.id.clone(),
            w: NODE_W,
            h: if n.kind == NodeKind::Topic {
                TOPIC_H
            } else {
                NODE_H
            },
        })
        .collect();
    let pairs: Vec<(String, String)> = map
        .edges
        .iter()
        .map(|e| (e.source.clone(), e.target.clone()))
        .collect();
    let layout = map_layout::layout(&boxes, &pairs);
    let max_calls = map.edges.iter().map(|e| e.calls).max().unwrap_or(1).max(1);
    let edges = map
        .edges
        .iter()
        .map(|e| {
            // Edges between the same pair (an http call and a hand-off) drawn side by side.
            let same: Vec<&MapEdge> = map
                .edges
                .iter()
                .filter(|o| o.source == e.source && o.target == e.target)
                .collect();
            let k = same.iter().position(|o| o.kind == e.kind).unwrap_or(0);
            let offset = (k as f64 - (same.len() as f64 - 1.0) / 2.0) * 14.0;
            let route = layout
                .edges
                .iter()
                .find(|r| r.source == e.source && r.target == e.target);
            route.map(|r| edge_view(e, &r.points, offset, max_calls))
        })
        .collect_view();
    let nodes = layout
        .nodes
        .iter()
        .filter_map(|p| {
            let n = map.node(&p.id)?;
            Some(node_view(n, p))
        })
        .collect_view();
    view! {
        <p class="map-caption" id="map-caption" data-refreshes=refreshes>{caption}</p>
        <div class="map-scroll">
            <svg class="service-map" id="service-map" role="img" aria-label="Service map"
                viewBox=format!("0 0 {:.0} {:.0}", layout.width, layout.height)
                width=format!("{:.0}", layout.width) height=format!("{:.0}", layout.height)>
                <defs>
                    <marker id="map-arrow" viewBox="0 0 10 10" refX="9" refY="5"
                        markerUnits="userSpaceOnUse" markerWidth="11" markerHeight="11" orient="auto-start-reverse">
                        <path d="M 0 0 L 10 5 L 0 10 z" class="arrow-head"/>
                    </marker>
                    <marker id="map-arrow-err" viewBox="0 0 10 10" refX="9" refY="5"
                        markerUnits="userSpaceOnUse" markerWidth="11" markerHeight="11" orient="auto-start-reverse">
                        <path d="M 0 0 L 10 5 L 0 10 z" class="arrow-head err"/>
                    </marker>
                </defs>
                <g class="map-edges">{edges}</g>
                <g class="map-nodes">{nodes}</g>
            </svg>
        </div>
        <p class="map-legend">
            <span class="key http">"— http / rpc call"</span>
            <span class="key kafka">"- - Kafka hand-off"</span>
            " · boxes: requests to the service (SERVER and CONSUMER spans); arrows: the called side's spans; click a service for its RED page."
        </p>
    }
    .into_any()
}

/// A route's SVG path: cubic curves with horizontal tangents between consecutive points, and
/// the point halfway along it (where the label goes).
fn path_of(points: &[(f64, f64)], offset: f64) -> (String, (f64, f64)) {
    let pts: Vec<(f64, f64)> = points.iter().map(|(x, y)| (*x, y + offset)).collect();
    let mut d = format!("M {:.1} {:.1}", pts[0].0, pts[0].1);
    for w in pts.windows(2) {
        let ((x1, y1), (x2, y2)) = (w[0], w[1]);
        let dx = (x2 - x1) / 2.0;
        d.push_str(&format!(
            " C {:.1} {:.1} {:.1} {:.1} {:.1} {:.1}",
            x1 + dx,
            y1,
            x2 - dx,
            y2,
            x2,
            y2
        ));
    }
    // The middle segment's midpoint (a symmetric curve passes through the chord's midpoint).
    let i = (pts.len() - 1) / 2;
    let (a, b) = (pts[i], pts[i + 1]);
    (d, ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0))
}

fn edge_view(e: &MapEdge, points: &[(f64, f64)], offset: f64, max_calls: u64) -> impl IntoView {
    let (d, (lx, ly)) = path_of(points, offset);
    let err = e.error_rate >= 0.01;
    let width = 1.5 + 3.5 * (e.calls as f64 / max_calls as f64).sqrt();
    let unit = if e.kind == EdgeKind::Kafka {
        " msg"
    } else {
        ""
    };
    let label = format!("{}{unit} · {} err", rate(e.rate), percent(e.error_rate));
    let p95 = format!("p95 {}", format::duration_us(e.latency.p95_us));
    let tip = format!(
        "{} → {} ({}): {} calls, {} errors, p50 {}, p95 {}, p99 {}",
        e.source,
        e.target,
        e.kind.as_str(),
        e.calls,
        e.errors,
        format::duration_us(e.latency.p50_us),
        format::duration_us(e.latency.p95_us),
        format::duration_us(e.latency.p99_us)
    );
    let marker = if err {
        "url(#map-arrow-err)"
    } else {
        "url(#map-arrow)"
    };
    view! {
        <g class=format!("map-edge {}", e.kind.as_str()) class:err=err
            data-source=e.source.clone() data-target=e.target.clone() data-kind=e.kind.as_str()>
            <path d=d class="edge-line" stroke-width=format!("{width:.1}") marker-end=marker/>
            <text x=format!("{lx:.1}") y=format!("{:.1}", ly - 19.0) class="edge-label" text-anchor="middle">
                <tspan x=format!("{lx:.1}") dy="0">{label}</tspan>
                <tspan x=format!("{lx:.1}") dy="13">{p95}</tspan>
            </text>
            <title>{tip}</title>
        </g>
    }
}

fn node_view(n: &MapNode, p: &map_layout::Placed) -> impl IntoView {
    let err = n.error_rate >= 0.01;
    let p95 = n.latency.map_or("no requests".to_string(), |l| {
        format!("p95 {}", format::duration_us(l.p95_us))
    });
    let translate = format!("translate({:.1},{:.1})", p.x, p.y);
    let (w, h) = (p.w, p.h);
    if n.kind == NodeKind::Topic {
        let stats = format!(
            "topic · {} msg · {} err",
            rate(n.rate),
            percent(n.error_rate)
        );
        return view! {
            <g class="map-node topic" class:err=err data-node=n.id.clone() data-name=n.name.clone() transform=translate>
                <rect width=w height=h rx=h / 2.0 class="node-box"/>
                <text x=w / 2.0 y=21.0 class="node-name" text-anchor="middle">{n.name.clone()}</text>
                <text x=w / 2.0 y=39.0 class="node-stats" text-anchor="middle">{stats}</text>
                <title>{format!("Kafka topic {}: {} messages published, {} failed", n.name, n.calls, n.errors)}</title>
            </g>
        }
        .into_any();
    }
    let stats = format!("{} req · {} err", rate(n.rate), percent(n.error_rate));
    let href = format!("/monitor/{}", segment(&n.name));
    view! {
        <g class="map-node service" class:err=err data-node=n.id.clone() data-name=n.name.clone() transform=translate>
            <a href=href>
                <rect width=w height=h rx=6.0 class="node-box"/>
                <rect width=6.0 height=h rx=3.0 fill=service_colour(&n.name) class="node-stripe"/>
                <text x=16.0 y=23.0 class="node-name">{n.name.clone()}</text>
                <text x=16.0 y=42.0 class="node-stats">{stats}</text>
                <text x=16.0 y=59.0 class="node-stats">{p95}</text>
                <title>{format!("{}: {} requests, {} errors — open its RED page", n.name, n.calls, n.errors)}</title>
            </a>
        </g>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_at_any_traffic() {
        assert_eq!(rate(12.34), "12/s");
        assert_eq!(rate(1.0), "1.0/s");
        assert_eq!(rate(0.5), "30/min");
        assert_eq!(rate(1.0 / 3600.0), "1.0/h");
        assert_eq!(percent(0.0), "0 %");
        assert_eq!(percent(0.125), "12.5 %");
        assert_eq!(percent(0.0001), "<0.1 %");
    }

    #[test]
    fn lookbacks_default_to_an_hour_and_links_are_encoded() {
        assert_eq!(lookback_entry(Some("5m")).2, 300_000);
        assert_eq!(lookback_entry(Some("bogus")).0, DEFAULT_LOOKBACK);
        assert_eq!(lookback_entry(None).0, DEFAULT_LOOKBACK);
        assert_eq!(segment("order-service"), "order-service");
        assert_eq!(segment("a b/<c>"), "a%20b%2F%3Cc%3E");
    }

    #[test]
    fn a_path_passes_its_points_and_labels_its_middle() {
        let (d, mid) = path_of(&[(0.0, 0.0), (100.0, 50.0)], 0.0);
        assert!(
            d.starts_with("M 0.0 0.0 C 50.0 0.0 50.0 50.0 100.0 50.0"),
            "{d}"
        );
        assert_eq!(mid, (50.0, 25.0));
        let (_, mid) = path_of(&[(0.0, 0.0), (100.0, 0.0), (200.0, 40.0)], 10.0);
        assert_eq!(mid, (150.0, 30.0), "the middle segment, offset");
    }
}
