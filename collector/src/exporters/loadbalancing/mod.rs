//! `loadbalancing` exporter (contrib's `loadbalancingexporter`): routes every span — or log
//! record — of a trace to the same backend collector, so a tier of agents can feed a tier of
//! gateways that tail-sample whole traces.
//!
//! Shaped as three parts, each replaceable on its own:
//! - [`resolver`] yields the backend endpoint set (`static` once; `dns` on a timer, published on
//!   a `watch` channel, keeping the last good set when a lookup fails);
//! - [`ring`] maps a routing key (trace id bytes or `service.name`) to one endpoint by
//!   consistent hashing, so a change of the set moves only the keys of the endpoints that came
//!   or went;
//! - [`LoadBalancer`] owns one `otlp` exporter per endpoint — the very [`QueuedSender`] +
//!   [`GrpcTransport`] of the `otlp` exporter, with its sending queue and retries, not a copy —
//!   created when the resolver adds an endpoint and shut down (drained) when it disappears.
//!   Each batch is split per backend ([`Route`]), keeping resource and scope grouping.
//!
//! With no backend known yet, data is refused with a retryable error (the receiver answers
//! UNAVAILABLE / 503 and the client retries); nothing is dropped silently. All backends share the
//! component's counters (`sent`, `dropped`); [`LbStats`] adds the number of backends, the items
//! routed to each and the resolver's outcomes to `/metrics`.

pub mod config;
pub mod resolver;
pub mod ring;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

pub use config::{LoadBalancingExporterConfig, RoutingKey};
pub use resolver::{LookupFn, ResolutionCounts, system_lookup};
pub use ring::Ring;

use crate::exporters::otlp::{GrpcTransport, OtlpGrpcSignal, QueueGauge, QueuedSender};
use crate::pipeline::signal::{self, Signal};
use crate::pipeline::{ComponentCounters, ConsumeError, Consumer};

/// Picks the backend index for a routing key on a non-empty ring.
pub struct Picker<'a> {
    ring: &'a Ring,
    /// Spreads items without a trace id round-robin.
    rr: &'a AtomicUsize,
}

impl Picker<'_> {
    fn trace(&self, trace_id: &[u8]) -> usize {
        if trace_id.iter().all(|b| *b == 0) {
            return self.rr.fetch_add(1, Ordering::Relaxed) % self.ring.endpoints().len();
        }
        self.ring.lookup(trace_id).unwrap_or(0)
    }

    fn service(&self, name: Option<&str>) -> usize {
        self.ring
            .lookup(name.unwrap_or_default().as_bytes())
            .unwrap_or(0)
    }
}

/// Signals the exporter can route: split a batch into one part per backend index.
pub trait Route: Signal + OtlpGrpcSignal {
    fn split(batch: Vec<Self>, key: RoutingKey, pick: &Picker<'_>) -> BTreeMap<usize, Vec<Self>>;
}

macro_rules! route_by_item_trace_id {
    ($res:ty, $scopes:ident, $scope:ident, $items:ident) => {
        impl Route for $res {
            fn split(
                batch: Vec<Self>,
                key: RoutingKey,
                pick: &Picker<'_>,
            ) -> BTreeMap<usize, Vec<Self>> {
                let mut out: BTreeMap<usize, Vec<Self>> = BTreeMap::new();
                for mut r in batch {
                    if key == RoutingKey::Service {
                        let idx = pick.service(signal::service_name(r.resource.as_ref()));
                        out.entry(idx).or_default().push(r);
                        continue;
                    }
                    let scopes = std::mem::take(&mut r.$scopes);
                    let mut per: BTreeMap<usize, Self> = BTreeMap::new();
                    for mut s in scopes {
                        let items = std::mem::take(&mut s.$items);
                        let mut per_scope: BTreeMap<usize, $scope> = BTreeMap::new();
                        for item in items {
                            per_scope
                                .entry(pick.trace(&item.trace_id))
                                .or_insert_with(|| s.clone())
                                .$items
                                .push(item);
                        }
                        for (idx, part) in per_scope {
                            per.entry(idx)
                                .or_insert_with(|| r.clone())
                                .$scopes
                                .push(part);
                        }
                    }
                    for (idx, part) in per {
                        out.entry(idx).or_default().push(part);
                    }
                }
                out
            }
        }
    };
}

route_by_item_trace_id!(ResourceSpans, scope_spans, ScopeSpans, spans);
route_by_item_trace_id!(ResourceLogs, scope_logs, ScopeLogs, log_records);

/// Per endpoint: items routed to it (kept after it leaves) and, while present, its queue.
type PerBackend = BTreeMap<String, (Arc<AtomicU64>, Option<Arc<QueueGauge>>)>;

/// What `/metrics` shows about one loadbalancing exporter.
#[derive(Debug, Default)]
pub struct LbStats {
    pub backends: AtomicU64,
    pub resolutions: Arc<ResolutionCounts>,
    per_backend: Mutex<PerBackend>,
}

impl LbStats {
    /// (endpoint, items routed, queued batches) for every endpoint ever known, sorted.
    pub fn per_backend(&self) -> Vec<(String, u64, Option<u64>)> {
        self.per_backend
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(e, (n, q))| {
                (
                    e.clone(),
                    n.load(Ordering::Relaxed),
                    q.as_ref().map(|q| q.size.load(Ordering::Relaxed)),
                )
            })
            .collect()
    }
}

struct Backend<T: Signal> {
    endpoint: String,
    sender: Arc<QueuedSender<T>>,
    routed: Arc<AtomicU64>,
}

/// The ring and, in the ring's endpoint order, one backend per endpoint.
struct State<T: Signal> {
    ring: Ring,
    backends: Vec<Arc<Backend<T>>>,
}

pub struct LoadBalancer<T: Route> {
    id: String,
    cfg: LoadBalancingExporterConfig,
    key: RoutingKey,
    counters: Arc<ComponentCounters>,
    pub stats: Arc<LbStats>,
    state: RwLock<Arc<State<T>>>,
    /// Serializes endpoint-set changes.
    apply_lock: Mutex<()>,
    /// Drains of removed backends, awaited at shutdown.
    retiring: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The DNS resolver and the task applying its updates.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    rr: AtomicUsize,
}

impl<T: Route> LoadBalancer<T> {
    /// Starts the exporter with the system DNS resolver. Must run inside a tokio runtime.
    pub fn start(
        id: String,
        cfg: &LoadBalancingExporterConfig,
        counters: Arc<ComponentCounters>,
    ) -> Result<Arc<Self>, String> {
        Self::start_with_lookup(id, cfg, counters, system_lookup())
    }

    pub fn start_with_lookup(
        id: String,
        cfg: &LoadBalancingExporterConfig,
        counters: Arc<ComponentCounters>,
        lookup: LookupFn,
    ) -> Result<Arc<Self>, String> {
        let lb = Arc::new(Self {
            id: id.clone(),
            cfg: cfg.clone(),
            key: cfg.routing_key(),
            counters,
            stats: Arc::new(LbStats::default()),
            state: RwLock::new(Arc::new(State {
                ring: Ring::default(),
                backends: Vec::new(),
            })),
            apply_lock: Mutex::new(()),
            retiring: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
            rr: AtomicUsize::new(0),
        });
        if let Some(s) = &cfg.resolver.static_ {
            let endpoints = s
                .hostnames
                .iter()
                .map(|h| config::with_default_port(h))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("exporter {id}: {e}"))?;
            lb.apply(&endpoints)?;
        } else if let Some(d) = &cfg.resolver.dns {
            let (mut rx, resolver) =
                resolver::spawn_dns(id.clone(), d.clone(), lookup, lb.stats.resolutions.clone());
            let weak: Weak<Self> = Arc::downgrade(&lb);
            let updater = tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    let set = rx.borrow_and_update().clone();
                    let Some(lb) = weak.upgrade() else { return };
                    if let Err(e) = lb.apply(&set) {
                        tracing::error!(exporter = %lb.id, error = %e, "loadbalancing: cannot apply the new backends");
                    }
                }
            });
            lb.tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend([resolver, updater]);
        } else {
            return Err(format!("exporter {id}: no resolver configured"));
        }
        Ok(lb)
    }

    /// The endpoints currently routed to, sorted.
    pub fn endpoints(&self) -> Vec<String> {
        self.snapshot().ring.endpoints().to_vec()
    }

    fn snapshot(&self) -> Arc<State<T>> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes `endpoints` the backend set: keeps the backends still listed, creates the new ones,
    /// rebuilds the ring, and drains the removed ones in the background.
    pub fn apply(&self, endpoints: &[String]) -> Result<(), String> {
        let _serial = self.apply_lock.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.snapshot();
        let ring = Ring::new(endpoints);
        if ring.endpoints() == old.ring.endpoints() {
            return Ok(());
        }
        let mut existing: BTreeMap<&str, &Arc<Backend<T>>> = old
            .backends
            .iter()
            .map(|b| (b.endpoint.as_str(), b))
            .collect();
        let mut backends = Vec::with_capacity(ring.endpoints().len());
        for e in ring.endpoints() {
            match existing.remove(e.as_str()) {
                Some(b) => backends.push(b.clone()),
                None => backends.push(self.backend(e)?),
            }
        }
        let removed: Vec<Arc<Backend<T>>> = existing.into_values().cloned().collect();
        tracing::info!(
            exporter = %self.id,
            endpoints = ?ring.endpoints(),
            removed = ?removed.iter().map(|b| &b.endpoint).collect::<Vec<_>>(),
            "loadbalancing: ring rebuilt"
        );
        self.stats
            .backends
            .store(backends.len() as u64, Ordering::Relaxed);
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(State { ring, backends });
        for b in removed {
            self.retire(b);
        }
        Ok(())
    }

    fn backend(&self, endpoint: &str) -> Result<Arc<Backend<T>>, String> {
        let transport = Arc::new(
            GrpcTransport::new(&self.cfg.backend_config(endpoint))
                .map_err(|e| format!("exporter {}: backend {endpoint}: {e}", self.id))?,
        );
        let otlp = &self.cfg.protocol.otlp;
        let sender = QueuedSender::<T>::new(
            format!("{} ({endpoint})", self.id),
            transport,
            otlp.retry_on_failure.clone(),
            otlp.sending_queue.clone(),
            self.counters.clone(),
        );
        let mut per = self
            .stats
            .per_backend
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let entry = per.entry(endpoint.to_string()).or_default();
        entry.1 = Some(sender.gauge.clone());
        Ok(Arc::new(Backend {
            endpoint: endpoint.to_string(),
            sender,
            routed: entry.0.clone(),
        }))
    }

    fn retire(&self, b: Arc<Backend<T>>) {
        if let Some(e) = self
            .stats
            .per_backend
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(&b.endpoint)
        {
            e.1 = None;
        }
        let id = self.id.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = b.sender.shutdown().await {
                tracing::warn!(exporter = %id, endpoint = %b.endpoint, error = %e, "loadbalancing: removed backend not drained");
            }
        });
        let mut retiring = self.retiring.lock().unwrap_or_else(|p| p.into_inner());
        retiring.retain(|t| !t.is_finished());
        retiring.push(task);
    }
}

#[async_trait::async_trait]
impl<T: Route> Consumer<T> for LoadBalancer<T> {
    async fn consume(&self, batch: Vec<T>) -> Result<(), ConsumeError> {
        let state = self.snapshot();
        if state.ring.is_empty() {
            return Err(ConsumeError::Refused(format!(
                "exporter {}: no backend known yet (the resolver has found no endpoint)",
                self.id
            )));
        }
        let pick = Picker {
            ring: &state.ring,
            rr: &self.rr,
        };
        let groups = T::split(batch, self.key, &pick);
        let sends = groups.into_iter().map(|(idx, part)| {
            let b = state.backends[idx].clone();
            async move {
                let n = signal::count(&part) as u64;
                let r = b.sender.consume(part).await;
                if r.is_ok() {
                    b.routed.fetch_add(n, Ordering::Relaxed);
                }
                r
            }
        });
        let mut first: Option<ConsumeError> = None;
        for r in futures::future::join_all(sends).await {
            if let Err(e) = r {
                let refused = matches!(e, ConsumeError::Refused(_));
                if first.is_none() || refused {
                    first = Some(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Stops resolving, then drains every backend's queue (current and recently removed).
    async fn shutdown(&self) -> Result<(), ConsumeError> {
        for t in std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner())) {
            t.abort();
        }
        let state = {
            let _serial = self.apply_lock.lock().unwrap_or_else(|p| p.into_inner());
            let mut guard = self.state.write().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(
                &mut *guard,
                Arc::new(State {
                    ring: Ring::default(),
                    backends: Vec::new(),
                }),
            )
        };
        self.stats.backends.store(0, Ordering::Relaxed);
        let drains = state.backends.iter().map(|b| b.sender.shutdown());
        let mut result = Ok(());
        for r in futures::future::join_all(drains).await {
            if let Err(e) = r {
                result = Err(e);
            }
        }
        let retiring =
            std::mem::take(&mut *self.retiring.lock().unwrap_or_else(|p| p.into_inner()));
        for t in retiring {
            let _ = t.await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::logs::v1::LogRecord;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::Span;

    use super::*;

    fn span(trace: u8, n: u8) -> Span {
        Span {
            trace_id: [trace; 16].to_vec(),
            span_id: [n; 8].to_vec(),
            name: format!("s{n}"),
            ..Default::default()
        }
    }

    fn resource(service: &str) -> Option<Resource> {
        Some(Resource {
            attributes: vec![opentelemetry_proto::tonic::common::v1::KeyValue {
                key: "service.name".into(),
                value: signal::string_value(service),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    fn ring2() -> Ring {
        Ring::new(&["a:4317".to_string(), "b:4317".to_string()])
    }

    #[test]
    fn a_mixed_batch_is_split_per_backend_keeping_resource_and_scope() {
        let ring = ring2();
        // Two trace ids that land on different endpoints.
        let (t1, t2) = (1..=255u8)
            .flat_map(|a| (1..=255u8).map(move |b| (a, b)))
            .find(|(a, b)| ring.lookup(&[*a; 16]) != ring.lookup(&[*b; 16]))
            .unwrap();
        let scope = |name: &str, spans| ScopeSpans {
            scope: Some(InstrumentationScope {
                name: name.into(),
                ..Default::default()
            }),
            spans,
            schema_url: String::new(),
        };
        let batch = vec![ResourceSpans {
            resource: resource("checkout"),
            scope_spans: vec![
                scope("http", vec![span(t1, 1), span(t2, 2), span(t1, 3)]),
                scope("db", vec![span(t2, 4)]),
            ],
            schema_url: "u".into(),
        }];
        let rr = AtomicUsize::new(0);
        let pick = Picker {
            ring: &ring,
            rr: &rr,
        };
        let groups = ResourceSpans::split(batch, RoutingKey::TraceId, &pick);
        assert_eq!(groups.len(), 2);
        let of = |t: u8| &groups[&ring.lookup(&[t; 16]).unwrap()];
        let g1 = of(t1);
        assert_eq!(g1.len(), 1);
        assert_eq!(g1[0].resource, resource("checkout"));
        assert_eq!(g1[0].schema_url, "u");
        assert_eq!(g1[0].scope_spans.len(), 1);
        assert_eq!(g1[0].scope_spans[0].scope.as_ref().unwrap().name, "http");
        assert_eq!(g1[0].scope_spans[0].spans.len(), 2);
        let g2 = of(t2);
        let scopes: Vec<(&str, usize)> = g2[0]
            .scope_spans
            .iter()
            .map(|s| (s.scope.as_ref().unwrap().name.as_str(), s.spans.len()))
            .collect();
        assert_eq!(scopes, [("http", 1), ("db", 1)]);
    }

    #[test]
    fn service_routing_keeps_resources_whole() {
        let ring = ring2();
        let rr = AtomicUsize::new(0);
        let pick = Picker {
            ring: &ring,
            rr: &rr,
        };
        let rs = |svc: &str| ResourceSpans {
            resource: resource(svc),
            scope_spans: vec![ScopeSpans {
                spans: vec![span(1, 1), span(2, 2), span(3, 3)],
                ..Default::default()
            }],
            schema_url: String::new(),
        };
        let groups =
            ResourceSpans::split(vec![rs("a"), rs("b"), rs("a")], RoutingKey::Service, &pick);
        let total: usize = groups.values().map(|g| g.len()).sum();
        assert_eq!(total, 3, "resources are not split");
        let a = &groups[&ring.lookup(b"a").unwrap()];
        assert!(a.iter().filter(|r| r.resource == resource("a")).count() == 2);
    }

    #[test]
    fn log_records_are_routed_by_their_trace_id() {
        let ring = ring2();
        let rr = AtomicUsize::new(0);
        let pick = Picker {
            ring: &ring,
            rr: &rr,
        };
        let rec = |t: u8| LogRecord {
            trace_id: if t == 0 { Vec::new() } else { [t; 16].to_vec() },
            ..Default::default()
        };
        let batch = vec![ResourceLogs {
            resource: resource("svc"),
            scope_logs: vec![ScopeLogs {
                log_records: (0..40).map(|i| rec(i % 8)).collect(),
                ..Default::default()
            }],
            schema_url: String::new(),
        }];
        let groups = ResourceLogs::split(batch, RoutingKey::TraceId, &pick);
        let mut total = 0;
        for (idx, parts) in &groups {
            for r in parts {
                for l in r.scope_logs.iter().flat_map(|s| &s.log_records) {
                    total += 1;
                    if !l.trace_id.is_empty() {
                        assert_eq!(ring.lookup(&l.trace_id), Some(*idx));
                    }
                }
            }
        }
        assert_eq!(total, 40);
    }

    #[tokio::test]
    async fn no_backend_yet_is_a_retryable_refusal_and_dns_updates_the_ring() {
        let yaml: LoadBalancingExporterConfig = serde_json::from_value(serde_json::json!({
            "protocol": {"otlp": {"tls": {"insecure": true}}},
            "resolver": {"dns": {"hostname": "gateways.test", "interval": "10ms"}}
        }))
        .unwrap();
        yaml.validate().unwrap();
        let (tx, rx) = tokio::sync::watch::channel(Vec::<std::net::SocketAddr>::new());
        let lookup: LookupFn = Arc::new(move |_h, _p| {
            let set = rx.borrow().clone();
            Box::pin(async move {
                if set.is_empty() {
                    Err(std::io::Error::other("not yet"))
                } else {
                    Ok(set)
                }
            })
        });
        let lb = LoadBalancer::<ResourceSpans>::start_with_lookup(
            "loadbalancing".into(),
            &yaml,
            Arc::new(ComponentCounters::default()),
            lookup,
        )
        .unwrap();
        let batch = vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span(1, 1)],
                ..Default::default()
            }],
            ..Default::default()
        }];
        match lb.consume(batch).await {
            Err(ConsumeError::Refused(m)) => assert!(m.contains("no backend"), "{m}"),
            other => panic!("expected a retryable refusal, got {other:?}"),
        }
        tx.send_replace(vec![
            "127.0.0.1:4318".parse().unwrap(),
            "127.0.0.1:4317".parse().unwrap(),
        ]);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while lb.stats.backends.load(Ordering::Relaxed) != 2 {
            assert!(tokio::time::Instant::now() < deadline, "ring never built");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(lb.endpoints(), ["127.0.0.1:4317", "127.0.0.1:4318"]);
        tx.send_replace(vec!["127.0.0.1:4318".parse().unwrap()]);
        while lb.stats.backends.load(Ordering::Relaxed) != 1 {
            assert!(tokio::time::Instant::now() < deadline, "ring never shrank");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(lb.endpoints(), ["127.0.0.1:4318"]);
        let per = lb.stats.per_backend();
        assert_eq!(per.len(), 2, "the removed endpoint's counter is kept");
        assert_eq!(per[0].2, None, "but not its queue");
        lb.shutdown().await.unwrap();
    }
}
