//! The collector's own metrics: received / refused / dropped / sent items per component and
//! exporter queue sizes, rendered in the Prometheus text format for `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::ComponentCounters;
use crate::exporters::loadbalancing::LbStats;
use crate::exporters::otlp::QueueGauge;

#[derive(Debug, Clone)]
pub struct ComponentLabels {
    /// receiver, processor, exporter, connector
    pub kind: &'static str,
    pub id: String,
    pub signal: &'static str,
    pub pipeline: String,
}

/// (name, help, getter) of one counter family.
type Series = (&'static str, &'static str, fn(&ComponentCounters) -> u64);

#[derive(Default)]
pub struct SelfMetrics {
    components: Mutex<Vec<(ComponentLabels, Arc<ComponentCounters>)>>,
    queues: Mutex<Vec<(ComponentLabels, Arc<QueueGauge>)>>,
    loadbalancers: Mutex<Vec<(ComponentLabels, Arc<LbStats>)>>,
}

impl SelfMetrics {
    pub fn register(&self, labels: ComponentLabels) -> Arc<ComponentCounters> {
        let c = Arc::new(ComponentCounters::default());
        self.components
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((labels, c.clone()));
        c
    }

    pub fn register_queue(&self, labels: ComponentLabels, q: Arc<QueueGauge>) {
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((labels, q));
    }

    pub fn register_loadbalancer(&self, labels: ComponentLabels, s: Arc<LbStats>) {
        self.loadbalancers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((labels, s));
    }

    /// Statistics of the loadbalancing exporter with this id and signal (tests, lab).
    pub fn loadbalancer(&self, id: &str, signal: &str) -> Option<Arc<LbStats>> {
        self.loadbalancers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(l, _)| l.id == id && l.signal == signal)
            .map(|(_, s)| s.clone())
    }

    /// Counters of the first component with this id and signal (tests, lab).
    pub fn counters(&self, id: &str, signal: &str) -> Option<Arc<ComponentCounters>> {
        self.components
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(l, _)| l.id == id && l.signal == signal)
            .map(|(_, c)| c.clone())
    }

    pub fn render(&self) -> String {
        let comps = self.components.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        let series: [Series; 4] = [
            (
                "received",
                "Items (spans, data points, log records) that entered the component",
                |c| c.received.load(Ordering::Relaxed),
            ),
            ("sent", "Items the component passed on or exported", |c| {
                c.sent.load(Ordering::Relaxed)
            }),
            (
                "refused",
                "Items refused to the caller (back-pressure or error); the sender may retry",
                |c| c.refused.load(Ordering::Relaxed),
            ),
            (
                "dropped",
                "Items the component discarded (sampling, failed export after retries)",
                |c| c.dropped.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, get) in series {
            let metric = format!("tracelab_collector_component_{name}_items_total");
            let _ = writeln!(out, "# HELP {metric} {help}");
            let _ = writeln!(out, "# TYPE {metric} counter");
            for (l, c) in comps.iter() {
                let _ = writeln!(
                    out,
                    "{metric}{{kind=\"{}\",component=\"{}\",signal=\"{}\",pipeline=\"{}\"}} {}",
                    l.kind,
                    l.id,
                    l.signal,
                    l.pipeline,
                    get(c)
                );
            }
        }
        let queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        for (name, help, cap) in [
            (
                "tracelab_collector_exporter_queue_size",
                "Batches waiting in the exporter's sending queue",
                false,
            ),
            (
                "tracelab_collector_exporter_queue_capacity",
                "Capacity of the exporter's sending queue in batches",
                true,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (l, q) in queues.iter() {
                let v = if cap { &q.capacity } else { &q.size };
                let _ = writeln!(
                    out,
                    "{name}{{component=\"{}\",signal=\"{}\"}} {}",
                    l.id,
                    l.signal,
                    v.load(Ordering::Relaxed)
                );
            }
        }
        self.render_loadbalancers(&mut out);
        out
    }

    fn render_loadbalancers(&self, out: &mut String) {
        let lbs = self.loadbalancers.lock().unwrap_or_else(|p| p.into_inner());
        if lbs.is_empty() {
            return;
        }
        let name = "tracelab_collector_loadbalancer_num_backends";
        let _ = writeln!(
            out,
            "# HELP {name} Backends the loadbalancing exporter currently routes to"
        );
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (l, s) in lbs.iter() {
            let _ = writeln!(
                out,
                "{name}{{component=\"{}\",signal=\"{}\"}} {}",
                l.id,
                l.signal,
                s.backends.load(Ordering::Relaxed)
            );
        }
        let name = "tracelab_collector_loadbalancer_num_resolutions_total";
        let _ = writeln!(
            out,
            "# HELP {name} DNS resolutions of the loadbalancing exporter's resolver, by outcome"
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for (l, s) in lbs.iter() {
            for (outcome, n) in [
                ("success", &s.resolutions.success),
                ("failure", &s.resolutions.failure),
            ] {
                let _ = writeln!(
                    out,
                    "{name}{{component=\"{}\",signal=\"{}\",outcome=\"{outcome}\"}} {}",
                    l.id,
                    l.signal,
                    n.load(Ordering::Relaxed)
                );
            }
        }
        let per: Vec<_> = lbs.iter().map(|(l, s)| (l, s.per_backend())).collect();
        for (name, help, kind) in [
            (
                "tracelab_collector_loadbalancer_backend_items_total",
                "Items the loadbalancing exporter queued for each backend",
                "counter",
            ),
            (
                "tracelab_collector_loadbalancer_backend_queue_size",
                "Batches waiting in each current backend's sending queue",
                "gauge",
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (l, backends) in &per {
                for (endpoint, items, queue) in backends {
                    let v = if kind == "counter" {
                        Some(*items)
                    } else {
                        *queue
                    };
                    if let Some(v) = v {
                        let _ = writeln!(
                            out,
                            "{name}{{component=\"{}\",signal=\"{}\",endpoint=\"{endpoint}\"}} {v}",
                            l.id, l.signal
                        );
                    }
                }
            }
        }
    }
}
