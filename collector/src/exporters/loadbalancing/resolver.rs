//! Where the backends come from. `static`: a fixed list. `dns`: a task that resolves a name to
//! all its A/AAAA records every `interval` (the pods of a Kubernetes headless Service) and
//! publishes the sorted endpoint set on a `watch` channel; a failed, timed-out or empty lookup
//! keeps the last good set (with a warning), so a DNS hiccup never empties the ring.
//!
//! The lookup is a function value ([`LookupFn`]) so tests can make it fail on demand;
//! [`system_lookup`] is `tokio::net::lookup_host`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;

use super::config::DnsResolverConfig;

/// Resolves `(host, port)` to socket addresses.
pub type LookupFn =
    Arc<dyn Fn(String, u16) -> BoxFuture<'static, io::Result<Vec<SocketAddr>>> + Send + Sync>;

/// The system resolver (`getaddrinfo` through `tokio::net::lookup_host`).
pub fn system_lookup() -> LookupFn {
    Arc::new(|host, port| {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    })
}

/// Sorted, deduplicated `ip:port` strings (IPv6 bracketed): the same set in the same order on
/// every agent, whatever order the DNS server answered in.
pub fn endpoints_of(addrs: &[SocketAddr]) -> Vec<String> {
    let mut v: Vec<SocketAddr> = addrs.to_vec();
    v.sort();
    v.dedup();
    v.iter().map(ToString::to_string).collect()
}

/// One lookup, bounded by `timeout`; an empty answer is an error.
pub async fn resolve(
    lookup: &LookupFn,
    host: &str,
    port: u16,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    match tokio::time::timeout(timeout, lookup(host.to_string(), port)).await {
        Err(_) => Err(format!(
            "lookup of {host} timed out after {}ms",
            timeout.as_millis()
        )),
        Ok(Err(e)) => Err(format!("lookup of {host} failed: {e}")),
        Ok(Ok(addrs)) if addrs.is_empty() => Err(format!("lookup of {host} returned no address")),
        Ok(Ok(addrs)) => Ok(endpoints_of(&addrs)),
    }
}

/// Outcomes of the DNS resolver's lookups (self-metrics).
#[derive(Debug, Default)]
pub struct ResolutionCounts {
    pub success: AtomicU64,
    pub failure: AtomicU64,
}

/// Starts the periodic resolution; the receiver holds the current endpoint set (empty until the
/// first successful lookup). Abort the returned task to stop it.
pub fn spawn_dns(
    id: String,
    cfg: DnsResolverConfig,
    lookup: LookupFn,
    counts: Arc<ResolutionCounts>,
) -> (watch::Receiver<Vec<String>>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(Vec::new());
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(cfg.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match resolve(&lookup, &cfg.hostname, cfg.port, cfg.timeout).await {
                Ok(set) => {
                    counts.success.fetch_add(1, Ordering::Relaxed);
                    if *tx.borrow() != set {
                        tracing::info!(exporter = %id, endpoints = ?set, "loadbalancing: backends changed");
                        tx.send_replace(set);
                    }
                }
                Err(e) => {
                    counts.failure.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        exporter = %id,
                        error = %e,
                        kept = ?*tx.borrow(),
                        "loadbalancing: DNS resolution failed; keeping the last known backends"
                    );
                }
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    (rx, task)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    async fn until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn localhost_resolves_to_a_sorted_set_with_the_port() {
        let set = resolve(&system_lookup(), "localhost", 14317, Duration::from_secs(5))
            .await
            .expect("localhost resolves");
        assert!(!set.is_empty());
        let mut sorted = set.clone();
        sorted.sort();
        sorted.dedup();
        let as_addrs: Vec<SocketAddr> = set.iter().map(|s| s.parse().unwrap()).collect();
        assert_eq!(endpoints_of(&as_addrs), set, "sorted and deduplicated");
        assert!(
            as_addrs
                .iter()
                .all(|a| a.port() == 14317 && a.ip().is_loopback())
        );
        assert!(set.len() == sorted.len());
    }

    #[test]
    fn endpoints_are_sorted_whatever_the_answer_order() {
        let a: Vec<SocketAddr> = ["10.0.0.2:4317", "10.0.0.1:4317", "10.0.0.2:4317"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut b = a.clone();
        b.reverse();
        assert_eq!(endpoints_of(&a), ["10.0.0.1:4317", "10.0.0.2:4317"]);
        assert_eq!(endpoints_of(&b), endpoints_of(&a));
        let v6: SocketAddr = "[::1]:4317".parse().unwrap();
        assert_eq!(endpoints_of(&[v6]), ["[::1]:4317"]);
    }

    #[tokio::test]
    async fn a_failing_lookup_keeps_the_last_good_set() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        // Good once, then failures, an empty answer and a hanging lookup.
        let lookup: LookupFn = Arc::new(move |_host, port| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                match n {
                    0 => Ok(vec![
                        SocketAddr::from(([127, 0, 0, 2], port)),
                        SocketAddr::from(([127, 0, 0, 1], port)),
                    ]),
                    1 => Ok(Vec::new()),
                    2 => std::future::pending().await,
                    _ => Err(io::Error::other("no such host")),
                }
            })
        });
        let cfg = DnsResolverConfig {
            hostname: "gateways.test".into(),
            port: 4317,
            interval: Duration::from_millis(10),
            timeout: Duration::from_millis(50),
        };
        let counts = Arc::new(ResolutionCounts::default());
        let (rx, task) = spawn_dns("loadbalancing".into(), cfg, lookup, counts.clone());
        until("three failed lookups after the good one", || {
            counts.failure.load(Ordering::SeqCst) >= 3
        })
        .await;
        assert_eq!(counts.success.load(Ordering::SeqCst), 1);
        assert_eq!(*rx.borrow(), ["127.0.0.1:4317", "127.0.0.2:4317"]);
        task.abort();
    }
}
