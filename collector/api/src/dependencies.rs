//! `/api/v1/dependencies`: the service map. Nodes are services and messaging topics (Kafka topics
//! from the producer and consumer spans' `messaging.destination.name`); edges are calls between
//! services (`http`, `rpc`) and Kafka hand-offs (`kafka`: producer service → topic → consumer
//! service), each with call and error counts, the rate over the window and latency percentiles of
//! the called side.

use serde::{Deserialize, Serialize};

/// The whole map over one time window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DependenciesResponse {
    /// The window the figures cover, µs since the epoch: whole minutes from the one holding
    /// `endTs - lookback` to the end of the minute holding `endTs` (never past the present).
    pub start_us: u64,
    pub end_us: u64,
    /// Services (by name) first, then topics; each sorted by name.
    pub nodes: Vec<MapNode>,
    /// Sorted by (source, target, kind).
    pub edges: Vec<MapEdge>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    Service,
    /// A messaging topic (a Kafka topic here).
    Topic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// A span in one service with a child span in another (a CLIENT → SERVER call, usually).
    Http,
    /// The same, where the child span carries `rpc.system` (gRPC and the like).
    Rpc,
    /// A PRODUCER span → its topic, or a topic → a CONSUMER span of that topic.
    Kafka,
}

impl EdgeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Rpc => "rpc",
            Self::Kafka => "kafka",
        }
    }
}

/// Latency percentiles in µs, read from a log-linear histogram (8 buckets per power of two: each
/// figure is within about 6 % of the exact percentile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapNode {
    /// `service:NAME` or `topic:NAME` (a topic may share a service's name).
    pub id: String,
    pub kind: NodeKind,
    pub name: String,
    /// A service: its entry spans (SERVER and CONSUMER) in the window. A topic: the messages
    /// published to it (its PRODUCER spans), or consumed when no producer was seen.
    pub calls: u64,
    /// Of those, the spans with status ERROR.
    pub errors: u64,
    /// `calls` per second of the window.
    pub rate: f64,
    /// `errors / calls`, 0 when there were no calls.
    pub error_rate: f64,
    /// Durations of those spans; absent when there were none (a service that only calls out).
    pub latency: Option<Latency>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapEdge {
    /// Node ids.
    pub source: String,
    pub target: String,
    pub kind: EdgeKind,
    /// Child spans (the called side; for `kafka`, the producer span into a topic and the consumer
    /// span out of it).
    pub calls: u64,
    pub errors: u64,
    pub rate: f64,
    pub error_rate: f64,
    /// Durations of the child spans.
    pub latency: Latency,
}

/// The node id of a service.
pub fn service_node_id(name: &str) -> String {
    format!("service:{name}")
}

/// The node id of a topic.
pub fn topic_node_id(name: &str) -> String {
    format!("topic:{name}")
}

impl DependenciesResponse {
    pub fn node(&self, id: &str) -> Option<&MapNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn edge(&self, source: &str, target: &str, kind: EdgeKind) -> Option<&MapEdge> {
        self.edges
            .iter()
            .find(|e| e.source == source && e.target == target && e.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_snake_case_and_round_trip() {
        let r = DependenciesResponse {
            start_us: 60_000_000,
            end_us: 120_000_000,
            nodes: vec![MapNode {
                id: topic_node_id("orders"),
                kind: NodeKind::Topic,
                name: "orders".into(),
                calls: 2,
                errors: 0,
                rate: 2.0 / 60.0,
                error_rate: 0.0,
                latency: None,
            }],
            edges: vec![MapEdge {
                source: service_node_id("order-service"),
                target: topic_node_id("orders"),
                kind: EdgeKind::Kafka,
                calls: 2,
                errors: 1,
                rate: 2.0 / 60.0,
                error_rate: 0.5,
                latency: Latency {
                    p50_us: 10,
                    p95_us: 20,
                    p99_us: 30,
                },
            }],
        };
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["nodes"][0]["kind"], "topic");
        assert_eq!(j["nodes"][0]["latency"], serde_json::Value::Null);
        assert_eq!(j["edges"][0]["kind"], "kafka");
        assert_eq!(j["edges"][0]["source"], "service:order-service");
        let back: DependenciesResponse = serde_json::from_value(j).unwrap();
        assert_eq!(back, r);
        assert!(
            back.edge("service:order-service", "topic:orders", EdgeKind::Kafka)
                .is_some()
        );
    }
}
