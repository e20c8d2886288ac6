//! The embedded Kafka: a librdkafka `MockCluster` owned by the launcher process and served to the
//! service processes on its loopback bootstrap address.
//!
//! `MockCluster` holds a raw handle and is neither `Send` nor `Sync`, so it lives on a dedicated
//! thread for its whole life; the rest of the launcher only sees the bootstrap address and a
//! handle that stops the thread (dropping the cluster) when dropped.

use std::sync::mpsc;
use std::thread::JoinHandle;

use rdkafka::mocking::MockCluster;

/// Topic the order outbox publishes `order.placed` events to (contract: `contracts::events`).
pub const ORDERS_TOPIC: &str = "orders";

#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("could not create the librdkafka mock cluster: {0}")]
    Create(String),
    #[error("the mock cluster thread ended before reporting its address")]
    ThreadGone,
}

/// A running in-process mock Kafka cluster. Dropping it shuts the cluster down.
#[derive(Debug)]
pub struct EmbeddedKafka {
    bootstrap: String,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedKafka {
    /// Starts a one-broker mock cluster with the `orders` topic (`partitions` partitions).
    pub fn start(partitions: i32) -> Result<Self, KafkaError> {
        let (addr_tx, addr_rx) = mpsc::channel::<Result<String, String>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("mock-kafka".into())
            .spawn(move || {
                let cluster = match MockCluster::new(1) {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = addr_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                // Created up front so the first produce does not race topic auto-creation
                // and the consumer group is assigned a partition as soon as it joins.
                if let Err(e) = cluster.create_topic(ORDERS_TOPIC, partitions, 1) {
                    let _ = addr_tx.send(Err(format!("create topic {ORDERS_TOPIC}: {e}")));
                    return;
                }
                let _ = addr_tx.send(Ok(cluster.bootstrap_servers()));
                // Blocks until the owner drops its sender (or asks to stop).
                let _ = stop_rx.recv();
                drop(cluster);
            })
            .map_err(|e| KafkaError::Create(e.to_string()))?;
        match addr_rx.recv() {
            Ok(Ok(bootstrap)) => Ok(Self {
                bootstrap,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(KafkaError::Create(e))
            }
            Err(_) => Err(KafkaError::ThreadGone),
        }
    }

    /// The `bootstrap.servers` value clients use, e.g. `127.0.0.1:39127`.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap
    }
}

impl Drop for EmbeddedKafka {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_cluster_listens_on_loopback_and_stops() {
        let kafka = EmbeddedKafka::start(1).expect("mock cluster starts");
        let addr = kafka.bootstrap_servers().to_string();
        assert!(addr.starts_with("127.0.0.1:"), "bootstrap {addr}");
        // Something accepts TCP connections there while it runs.
        std::net::TcpStream::connect(&addr).expect("broker accepts connections");
        drop(kafka);
    }
}
