//! Builds the component graph from a [`LoadedConfig`]: one processor chain per pipeline, one
//! exporter instance per (exporter id, signal) shared by the pipelines that list it, connectors
//! as the exporter of one pipeline and the receiver of another, and a fan-out per receiver.
//!
//! Pipelines are built downstream first (a pipeline fed by a connector before the one feeding
//! it). The resulting [`Graph`] knows the shutdown order: every pipeline's processors from
//! upstream to downstream, connectors after the pipelines that feed them, exporters last.
//!
//! Processors are built once per pipeline (like the OpenTelemetry Collector): a processor id in
//! two pipelines is two instances. Sampling processors report into the [`SamplingRegistry`] under
//! their component id, so those instances share one set of statistics (summed).
//!
//! Sampling decisions go to the stores they concern: each tail sampler queues its decisions into
//! the [`DecisionQueue`] of every `tracelab` store downstream of its pipeline ([`stores_fed_by`]):
//! the pipeline's own `tracelab` exporters, and through each connector it exports to, the stores
//! fed by the pipelines that connector feeds (of the signal the connector emits), transitively.
//! A store therefore persists only the decisions of tail samplers upstream of it; a store fed by
//! two tail samplers in a row (one before a `forward` connector, one after) persists both.

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use opentelemetry_proto::tonic::logs::v1::ResourceLogs;
use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

use super::self_metrics::{ComponentLabels, SelfMetrics};
use super::signal::Signal;
use super::{ConsumeError, Consumer, CountSent, Fanout, Instrumented};
use crate::config::{
    ComponentId, ConnectorConfig, ExporterConfig, LoadedConfig, ProcessorConfig, SignalKind,
    pipeline_order,
};
use crate::connectors::spanmetrics::red::RedRegistry;
use crate::connectors::spanmetrics::{SpanMetricsConnector, SpanMetricsInput};
use crate::exporters::NopExporter;
use crate::exporters::debug::DebugExporter;
use crate::exporters::file::FileExporter;
use crate::exporters::loadbalancing::LoadBalancer;
use crate::exporters::otlp::{GrpcTransport, HttpTransport, OtlpGrpcSignal, QueuedSender};
use crate::exporters::prometheus::{PrometheusConsumer, PrometheusExporter};
use crate::exporters::tracelab::TracelabExporter;
use crate::processors::attributes::AttributesProcessor;
use crate::processors::batch::BatchProcessor;
use crate::processors::memory_limiter::{MemoryGauge, MemoryLimiter, MemoryProbe};
use crate::processors::probabilistic_sampler::ProbabilisticSampler;
use crate::processors::tail_sampling::TailSamplingProcessor;
use crate::receivers::otlp::SignalConsumers;
use crate::sampling::{DecisionQueue, SamplingRegistry};

/// Something the collector stops at shutdown, in order.
#[async_trait::async_trait]
pub trait Stop: Send + Sync {
    fn name(&self) -> String;
    async fn stop(&self) -> Result<(), ConsumeError>;
}

struct StopConsumer<T> {
    name: String,
    consumer: Arc<dyn Consumer<T>>,
}

#[async_trait::async_trait]
impl<T: Signal> Stop for StopConsumer<T> {
    fn name(&self) -> String {
        self.name.clone()
    }
    async fn stop(&self) -> Result<(), ConsumeError> {
        self.consumer.shutdown().await
    }
}

/// Injection points for tests and embedders.
#[derive(Clone, Default)]
pub struct BuildOptions {
    /// Replaces the measurement of every memory_limiter (see its `measure` key).
    pub memory_probe: Option<MemoryProbe>,
}

/// The wired graph.
pub struct Graph {
    /// What each receiver pushes into, per receiver id.
    pub receivers: HashMap<ComponentId, SignalConsumers>,
    /// Processors and connectors, upstream first.
    pub stop_first: Vec<Box<dyn Stop>>,
    /// Exporters.
    pub stop_last: Vec<Box<dyn Stop>>,
    /// Prometheus exporters whose HTTP servers the collector starts.
    pub prometheus: Vec<(ComponentId, String, Arc<PrometheusExporter>)>,
    pub self_metrics: Arc<SelfMetrics>,
    /// Every sampling processor's statistics, for the query API.
    pub sampling: Arc<SamplingRegistry>,
    /// Every spanmetrics connector's RED time series, for the query API.
    pub red: Arc<RedRegistry>,
}

/// Type-erased storage keyed by (component, signal): holds `Arc<dyn Consumer<T>>` or
/// `Vec<Arc<dyn Consumer<T>>>`.
type AnyMap = HashMap<(ComponentId, SignalKind), Box<dyn Any + Send + Sync>>;

struct Builder<'c> {
    cfg: &'c LoadedConfig,
    opts: BuildOptions,
    metrics: Arc<SelfMetrics>,
    /// Exporter instances: (id, signal) → Arc<dyn Consumer<T>>.
    exporters: AnyMap,
    /// Pipeline heads per receiver or connector: (id, signal) → Vec<Arc<dyn Consumer<T>>>.
    heads: AnyMap,
    gauges: HashMap<ComponentId, Arc<MemoryGauge>>,
    /// Per pipeline (in build order): its processors and connectors to stop.
    pipeline_stops: Vec<Vec<Box<dyn Stop>>>,
    stop_last: Vec<Box<dyn Stop>>,
    prometheus: Vec<(ComponentId, String, Arc<PrometheusExporter>)>,
    sampling: SamplingRegistry,
    red: RedRegistry,
    /// Started before wiring (opening the store is async); shared by traces and logs pipelines.
    tracelab: HashMap<ComponentId, Arc<TracelabExporter>>,
}

fn cast<A: ?Sized + 'static, B: ?Sized + 'static>(a: Arc<A>) -> Option<Arc<B>> {
    let boxed: Box<dyn Any> = Box::new(a);
    boxed.downcast::<Arc<B>>().ok().map(|b| *b)
}

/// Converts `Arc<dyn Consumer<X>>` to `Arc<dyn Consumer<T>>` when X and T are the same type
/// (signal-specific components in generic code; the config validation guarantees it).
fn same<X: Signal, T: Signal>(
    c: Arc<dyn Consumer<X>>,
    what: &str,
) -> Result<Arc<dyn Consumer<T>>, String> {
    cast::<dyn Consumer<X>, dyn Consumer<T>>(c)
        .ok_or_else(|| format!("{what} does not support this signal"))
}

/// Signals the builder can wire (all three, with their gRPC export client).
pub trait Wire: Signal + OtlpGrpcSignal {}
impl Wire for ResourceSpans {}
impl Wire for ResourceMetrics {}
impl Wire for ResourceLogs {}

impl Builder<'_> {
    fn labels(
        &self,
        kind: &'static str,
        id: &ComponentId,
        signal: SignalKind,
        pipeline: &str,
    ) -> ComponentLabels {
        ComponentLabels {
            kind,
            id: id.to_string(),
            signal: signal.as_str(),
            pipeline: pipeline.to_string(),
        }
    }

    fn heads_of<T: Signal>(&self, id: &ComponentId) -> Vec<Arc<dyn Consumer<T>>> {
        self.heads
            .get(&(id.clone(), T::KIND))
            .and_then(|b| b.downcast_ref::<Vec<Arc<dyn Consumer<T>>>>())
            .cloned()
            .unwrap_or_default()
    }

    fn fanout<T: Signal>(mut v: Vec<Arc<dyn Consumer<T>>>) -> Arc<dyn Consumer<T>> {
        if v.len() == 1 {
            v.remove(0)
        } else {
            Arc::new(Fanout { next: v })
        }
    }

    /// The exporter (or connector input) `id` for signal T, created on first use.
    fn exporter<T: Wire>(
        &mut self,
        id: &ComponentId,
        pipeline: &str,
        my_stops: &mut Vec<Box<dyn Stop>>,
    ) -> Result<Arc<dyn Consumer<T>>, String> {
        let key = (id.clone(), T::KIND);
        if let Some(e) = self
            .exporters
            .get(&key)
            .and_then(|b| b.downcast_ref::<Arc<dyn Consumer<T>>>())
        {
            return Ok(e.clone());
        }
        let cfg = self.cfg;
        if let Some(cc) = cfg.connectors.get(id) {
            let counters = self
                .metrics
                .register(self.labels("connector", id, T::KIND, pipeline));
            let input: Arc<dyn Consumer<T>> = match cc {
                ConnectorConfig::SpanMetrics(sc) => {
                    let out = Self::fanout(self.heads_of::<ResourceMetrics>(id));
                    let out: Arc<dyn Consumer<ResourceMetrics>> = Arc::new(CountSent {
                        next: out,
                        sent: counters.clone(),
                    });
                    let c = SpanMetricsConnector::new((**sc).clone(), out);
                    if let Some(r) = c.red() {
                        self.red.insert(id.to_string(), r);
                    }
                    let input: Arc<dyn Consumer<ResourceSpans>> = Arc::new(SpanMetricsInput(c));
                    same::<ResourceSpans, T>(input, "spanmetrics")?
                }
                ConnectorConfig::Forward => {
                    let out = Self::fanout(self.heads_of::<T>(id));
                    Arc::new(CountSent {
                        next: out,
                        sent: counters.clone(),
                    })
                }
            };
            let wrapped: Arc<dyn Consumer<T>> = Arc::new(Instrumented {
                inner: input,
                counters,
                count_sent: false,
            });
            my_stops.push(Box::new(StopConsumer {
                name: format!("connector {id}"),
                consumer: wrapped.clone(),
            }));
            self.exporters.insert(key, Box::new(wrapped.clone()));
            return Ok(wrapped);
        }
        let ec = cfg
            .exporters
            .get(id)
            .ok_or_else(|| format!("exporter {id} is not defined"))?;
        let labels = self.labels("exporter", id, T::KIND, pipeline);
        let counters = self.metrics.register(labels.clone());
        let (inner, queued): (Arc<dyn Consumer<T>>, bool) = match ec {
            ExporterConfig::Debug(d) => (
                Arc::new(DebugExporter::new(id.to_string(), d.clone())),
                false,
            ),
            ExporterConfig::File(f) => (Arc::new(FileExporter::new(f)), false),
            ExporterConfig::Nop => (Arc::new(NopExporter), false),
            ExporterConfig::Otlp(o) => {
                let t = Arc::new(GrpcTransport::new(o)?);
                let s = QueuedSender::<T>::new(
                    id.to_string(),
                    t,
                    o.retry_on_failure.clone(),
                    o.sending_queue.clone(),
                    counters.clone(),
                );
                self.metrics.register_queue(labels, s.gauge.clone());
                (s, true)
            }
            ExporterConfig::OtlpHttp(o) => {
                let t = Arc::new(HttpTransport::new(o, o.url_for(T::KIND))?);
                let s = QueuedSender::<T>::new(
                    id.to_string(),
                    t,
                    o.retry_on_failure.clone(),
                    o.sending_queue.clone(),
                    counters.clone(),
                );
                self.metrics.register_queue(labels, s.gauge.clone());
                (s, true)
            }
            ExporterConfig::LoadBalancing(lb) => {
                let c = match T::KIND {
                    SignalKind::Traces => {
                        let l = LoadBalancer::<ResourceSpans>::start(
                            id.to_string(),
                            lb,
                            counters.clone(),
                        )?;
                        self.metrics.register_loadbalancer(labels, l.stats.clone());
                        same::<ResourceSpans, T>(l, "loadbalancing")?
                    }
                    SignalKind::Logs => {
                        let l = LoadBalancer::<ResourceLogs>::start(
                            id.to_string(),
                            lb,
                            counters.clone(),
                        )?;
                        self.metrics.register_loadbalancer(labels, l.stats.clone());
                        same::<ResourceLogs, T>(l, "loadbalancing")?
                    }
                    SignalKind::Metrics => {
                        return Err(format!("exporter {id} does not take metrics"));
                    }
                };
                (c, true)
            }
            ExporterConfig::Prometheus(p) => {
                let exp = PrometheusExporter::new(p.clone());
                self.prometheus
                    .push((id.clone(), p.endpoint.clone(), exp.clone()));
                let c: Arc<dyn Consumer<ResourceMetrics>> = Arc::new(PrometheusConsumer(exp));
                (same::<ResourceMetrics, T>(c, "prometheus")?, false)
            }
            ExporterConfig::Tracelab(_) => {
                let exp = self
                    .tracelab
                    .get(id)
                    .cloned()
                    .ok_or_else(|| format!("exporter {id}: the store was not opened"))?;
                let c = match T::KIND {
                    SignalKind::Traces => {
                        let c: Arc<dyn Consumer<ResourceSpans>> = exp;
                        same::<ResourceSpans, T>(c, "tracelab")?
                    }
                    SignalKind::Logs => {
                        let c: Arc<dyn Consumer<ResourceLogs>> = exp;
                        same::<ResourceLogs, T>(c, "tracelab")?
                    }
                    SignalKind::Metrics => {
                        return Err(format!("exporter {id} does not take metrics"));
                    }
                };
                (c, true)
            }
        };
        let wrapped: Arc<dyn Consumer<T>> = Arc::new(Instrumented {
            inner,
            counters,
            count_sent: !queued,
        });
        self.stop_last.push(Box::new(StopConsumer {
            name: format!("exporter {id} ({})", T::KIND.as_str()),
            consumer: wrapped.clone(),
        }));
        self.exporters.insert(key, Box::new(wrapped.clone()));
        Ok(wrapped)
    }

    /// Processor `id` of `pipeline`, whose pipeline feeds the stores `stores`.
    fn processor<T: Wire>(
        &mut self,
        id: &ComponentId,
        pipeline: &str,
        stores: &BTreeSet<ComponentId>,
        next: Arc<dyn Consumer<T>>,
    ) -> Result<Arc<dyn Consumer<T>>, String> {
        let cfg = self.cfg;
        let pc = cfg
            .processors
            .get(id)
            .ok_or_else(|| format!("processor {id} is not defined"))?;
        let counters = self
            .metrics
            .register(self.labels("processor", id, T::KIND, pipeline));
        let next: Arc<dyn Consumer<T>> = Arc::new(CountSent {
            next,
            sent: counters.clone(),
        });
        let inner: Arc<dyn Consumer<T>> = match pc {
            ProcessorConfig::Batch(b) => {
                BatchProcessor::with_counters(b.clone(), next, counters.clone())
            }
            ProcessorConfig::MemoryLimiter(m) => {
                let probe = self.opts.memory_probe.clone();
                let gauge = match self.gauges.get(id) {
                    Some(g) => g.clone(),
                    None => {
                        let g = MemoryGauge::start(m, probe).map_err(|e| {
                            format!("processors.{id}: memory_limiter cannot start: {e}")
                        })?;
                        self.gauges.insert(id.clone(), g.clone());
                        g
                    }
                };
                Arc::new(MemoryLimiter::new(gauge, next))
            }
            ProcessorConfig::Attributes(a) => Arc::new(AttributesProcessor::new(a.clone(), next)),
            ProcessorConfig::ProbabilisticSampler(p) => {
                let stats = self
                    .sampling
                    .probabilistic(&id.to_string(), pipeline)
                    .ok_or_else(|| format!("processor {id}: id registered twice"))?;
                Arc::new(ProbabilisticSampler::new(
                    p.clone(),
                    next,
                    counters.clone(),
                    stats,
                ))
            }
            ProcessorConfig::TailSampling(t) => {
                let next = same::<T, ResourceSpans>(next, "tail_sampling")?;
                let stats = self
                    .sampling
                    .tail_sampling(&id.to_string(), pipeline)
                    .ok_or_else(|| format!("processor {id}: id registered twice"))?;
                let persist: Vec<Arc<DecisionQueue>> = stores
                    .iter()
                    .filter_map(|s| {
                        let e = self.tracelab.get(s)?;
                        stats.add_store(&s.to_string());
                        Some(e.decision_queue())
                    })
                    .collect();
                let p = TailSamplingProcessor::new(t.clone(), next, stats, persist)
                    .map_err(|e| format!("processors.{id}.{e}"))?;
                p.count_dropped_into(counters.clone());
                let p: Arc<dyn Consumer<ResourceSpans>> = Arc::new(p);
                same::<ResourceSpans, T>(p, "tail_sampling")?
            }
        };
        Ok(Arc::new(Instrumented {
            inner,
            counters,
            count_sent: false,
        }))
    }

    fn pipeline<T: Wire>(&mut self, index: usize) -> Result<(), String> {
        let p = &self.cfg.pipelines[index];
        let mut stops: Vec<Box<dyn Stop>> = Vec::new();
        let mut connector_stops: Vec<Box<dyn Stop>> = Vec::new();
        let mut exporters = Vec::new();
        for e in &p.exporters {
            exporters.push(self.exporter::<T>(e, &p.id, &mut connector_stops)?);
        }
        let mut next = Self::fanout(exporters);
        let mut chain = Vec::new();
        let stores = stores_fed_by(self.cfg, index);
        for proc_id in p.processors.iter().rev() {
            next = self.processor::<T>(proc_id, &p.id, &stores, next)?;
            chain.push(StopConsumer {
                name: format!("processor {proc_id} ({})", p.id),
                consumer: next.clone(),
            });
        }
        // Processors upstream first, then the connectors this pipeline feeds.
        for s in chain.into_iter().rev() {
            stops.push(Box::new(s));
        }
        stops.extend(connector_stops);
        self.pipeline_stops.push(stops);
        for r in &p.receivers {
            let key = (r.clone(), T::KIND);
            let entry = self
                .heads
                .entry(key)
                .or_insert_with(|| Box::new(Vec::<Arc<dyn Consumer<T>>>::new()));
            if let Some(v) = entry.downcast_mut::<Vec<Arc<dyn Consumer<T>>>>() {
                v.push(next.clone());
            }
        }
        Ok(())
    }

    fn receiver_consumer<T: Signal>(&self, id: &ComponentId) -> Option<Arc<dyn Consumer<T>>> {
        let heads = self.heads_of::<T>(id);
        if heads.is_empty() {
            return None;
        }
        let counters = self
            .metrics
            .register(self.labels("receiver", id, T::KIND, ""));
        Some(Arc::new(Instrumented {
            inner: Self::fanout(heads),
            counters,
            count_sent: true,
        }))
    }
}

/// The `tracelab` stores that data of pipeline `index` reaches: its own `tracelab` exporters and,
/// through each connector it exports to, the stores of the pipelines that connector feeds with
/// the signal it emits (`forward`: the same signal; `spanmetrics`: metrics), transitively.
pub fn stores_fed_by(cfg: &LoadedConfig, index: usize) -> BTreeSet<ComponentId> {
    let mut out = BTreeSet::new();
    collect_stores(cfg, index, 0, &mut out);
    out
}

fn collect_stores(cfg: &LoadedConfig, index: usize, depth: usize, out: &mut BTreeSet<ComponentId>) {
    // Validated configs have no connector cycles; the depth bound only guards unvalidated ones.
    let Some(p) = cfg
        .pipelines
        .get(index)
        .filter(|_| depth <= cfg.pipelines.len())
    else {
        return;
    };
    for e in &p.exporters {
        if let Some(c) = cfg.connectors.get(e) {
            let emits = match c {
                ConnectorConfig::Forward => p.signal,
                ConnectorConfig::SpanMetrics(_) => SignalKind::Metrics,
            };
            for (j, q) in cfg.pipelines.iter().enumerate() {
                if q.signal == emits && q.receivers.contains(e) {
                    collect_stores(cfg, j, depth + 1, out);
                }
            }
        } else if matches!(cfg.exporters.get(e), Some(ExporterConfig::Tracelab(_))) {
            out.insert(e.clone());
        }
    }
}

/// Wires every pipeline of `cfg`. Must run inside a tokio runtime (processors start timers).
/// `tracelab` holds the already opened stores.
pub fn build(
    cfg: &LoadedConfig,
    opts: BuildOptions,
    tracelab: HashMap<ComponentId, Arc<TracelabExporter>>,
) -> Result<Graph, String> {
    let order = pipeline_order(&cfg.pipelines, &cfg.connectors)?;
    let mut b = Builder {
        cfg,
        opts,
        metrics: Arc::new(SelfMetrics::default()),
        exporters: HashMap::new(),
        heads: HashMap::new(),
        gauges: HashMap::new(),
        pipeline_stops: Vec::new(),
        stop_last: Vec::new(),
        prometheus: Vec::new(),
        sampling: SamplingRegistry::default(),
        red: RedRegistry::default(),
        tracelab,
    };
    for i in order {
        match cfg.pipelines[i].signal {
            SignalKind::Traces => b.pipeline::<ResourceSpans>(i)?,
            SignalKind::Metrics => b.pipeline::<ResourceMetrics>(i)?,
            SignalKind::Logs => b.pipeline::<ResourceLogs>(i)?,
        }
    }
    let mut receivers = HashMap::new();
    for id in cfg.receivers.keys() {
        receivers.insert(
            id.clone(),
            SignalConsumers {
                traces: b.receiver_consumer::<ResourceSpans>(id),
                metrics: b.receiver_consumer::<ResourceMetrics>(id),
                logs: b.receiver_consumer::<ResourceLogs>(id),
            },
        );
    }
    // Built downstream first, so stop in reverse: upstream pipelines first.
    let mut stop_first = Vec::new();
    for stops in b.pipeline_stops.into_iter().rev() {
        stop_first.extend(stops);
    }
    Ok(Graph {
        receivers,
        stop_first,
        stop_last: b.stop_last,
        prometheus: b.prometheus,
        self_metrics: b.metrics,
        sampling: Arc::new(b.sampling),
        red: Arc::new(b.red),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(s: &BTreeSet<ComponentId>) -> Vec<String> {
        s.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn stores_are_traced_through_forward_connectors_but_not_across_signals() {
        let cfg = crate::config::load_str(
            "receivers:
  otlp: {protocols: {http: {endpoint: 127.0.0.1:0}}}
processors:
  tail_sampling/a: {policies: [{name: all, type: always_sample}]}
connectors:
  forward:
  spanmetrics:
exporters:
  tracelab/direct: {storage: {directory: /tmp/a}, query: {endpoint: 127.0.0.1:0}}
  tracelab/behind: {storage: {directory: /tmp/b}, query: {endpoint: 127.0.0.1:0}}
  tracelab/logs: {storage: {directory: /tmp/c}, query: {endpoint: 127.0.0.1:0}}
  nop:
service:
  pipelines:
    traces/in: {receivers: [otlp], processors: [tail_sampling/a], exporters: [tracelab/direct, forward, spanmetrics]}
    traces/out: {receivers: [forward], exporters: [tracelab/behind]}
    logs/out: {receivers: [forward], exporters: [tracelab/logs]}
    logs/in: {receivers: [otlp], exporters: [forward]}
    metrics: {receivers: [spanmetrics], exporters: [nop]}
",
            "t.yaml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let index = |id: &str| cfg.pipelines.iter().position(|p| p.id == id).unwrap();
        assert_eq!(
            ids(&stores_fed_by(&cfg, index("traces/in"))),
            ["tracelab/behind", "tracelab/direct"],
            "its own store and the one behind the forward connector, not the logs store"
        );
        assert_eq!(
            ids(&stores_fed_by(&cfg, index("traces/out"))),
            ["tracelab/behind"]
        );
        assert_eq!(
            ids(&stores_fed_by(&cfg, index("logs/in"))),
            ["tracelab/logs"]
        );
        assert!(stores_fed_by(&cfg, index("metrics")).is_empty());
    }
}
