//! The stack's ports: the brief's fixed defaults (what `make demo` and the docs use) or free
//! ports picked by the OS for tests, so several stacks can run side by side.

use std::net::TcpListener;

/// Every port the stack listens on (all on 127.0.0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub gateway: u16,
    pub order: u16,
    pub payment: u16,
    pub inventory: u16,
    pub otlp_grpc: u16,
    pub otlp_http: u16,
    pub query: u16,
    pub prometheus: u16,
    pub health: u16,
    pub viewer: u16,
}

impl Ports {
    /// The brief's ports: gateway 8080, order 8081, payment 8082, inventory 8083, OTLP 4317/4318,
    /// query API 16686, Prometheus 8889, collector health 13133, viewer 3000.
    pub fn defaults() -> Self {
        Self {
            gateway: 8080,
            order: 8081,
            payment: 8082,
            inventory: 8083,
            otlp_grpc: 4317,
            otlp_http: 4318,
            query: 16686,
            prometheus: 8889,
            health: 13133,
            viewer: 3000,
        }
    }

    /// Ten distinct free ports. All listeners are held until every port is chosen, so none is
    /// handed out twice; another process could still take one before the child binds it, which
    /// the stack then reports as a crashed child (bind error in its last lines).
    pub fn auto() -> std::io::Result<Self> {
        let listeners: Vec<TcpListener> = (0..10)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<_, _>>()?;
        let p: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            gateway: p[0],
            order: p[1],
            payment: p[2],
            inventory: p[3],
            otlp_grpc: p[4],
            otlp_http: p[5],
            query: p[6],
            prometheus: p[7],
            health: p[8],
            viewer: p[9],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_ports_are_distinct() {
        let p = Ports::auto().unwrap();
        let mut all = vec![
            p.gateway,
            p.order,
            p.payment,
            p.inventory,
            p.otlp_grpc,
            p.otlp_http,
            p.query,
            p.prometheus,
            p.health,
            p.viewer,
        ];
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 10);
        assert!(all.iter().all(|&x| x != 0));
    }
}
