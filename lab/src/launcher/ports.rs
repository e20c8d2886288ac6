//! The stack's ports: the brief's fixed defaults (what `make demo` and the docs use) or, for tests
//! and side-by-side stacks, automatic ones: the four services then get `PORT=0`, bind a port the OS
//! picks and report it in their `PORT_FILE` (see `Stack::start`); the collector and the viewer
//! still get free ports picked here.

use std::net::TcpListener;

/// Every port the stack listens on (all on 127.0.0.1). A service port of 0 asks the service to
/// pick one; a running [`crate::launcher::Stack`]'s `ports` hold the ones they bound.
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
    /// card-provider, the simulator of the outside world.
    pub provider: u16,
}

impl Ports {
    /// The brief's ports: gateway 8080, order 8081, payment 8082, inventory 8083, OTLP 4317/4318,
    /// query API 16686, Prometheus 8889, collector health 13133, viewer 3000, card-provider 8090.
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
            provider: 8090,
        }
    }

    /// Port 0 for the four services and card-provider (each binds what the OS gives it and reports
    /// it), and six
    /// distinct free ports for the collector's five listeners and the viewer, which cannot report
    /// theirs. Those six are drawn at random from below the kernel's ephemeral range, so the ports
    /// the OS hands out for `bind(0)` and outgoing connections (the services, the MockCluster's
    /// listener, every client socket) cannot take one between picking and binding. Each is
    /// checked by binding it; all are held until the six are chosen, so none is handed out
    /// twice. One can still be taken by another launcher picking at the same moment:
    /// `Stack::start` retries.
    pub fn auto() -> std::io::Result<Self> {
        const PICKED: usize = 6;
        let (lo, hi) = pick_range();
        let mut rng = Rng::seeded();
        let mut held: Vec<TcpListener> = Vec::new();
        for _ in 0..2000 {
            if held.len() == PICKED {
                break;
            }
            let port = lo + (rng.next() % u64::from(hi - lo)) as u16;
            if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
                held.push(l);
            }
        }
        // Fall back to the OS's choice if the range is crowded.
        while held.len() < PICKED {
            held.push(TcpListener::bind("127.0.0.1:0")?);
        }
        let p: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            gateway: 0,
            order: 0,
            payment: 0,
            inventory: 0,
            provider: 0,
            otlp_grpc: p[0],
            otlp_http: p[1],
            query: p[2],
            prometheus: p[3],
            health: p[4],
            viewer: p[5],
        })
    }
}

/// `[lo, hi)` below the ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`, Linux default
/// 32768–60999) and above the well-known and commonly configured ports.
fn pick_range() -> (u16, u16) {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|p| p.parse::<u16>().ok())
        })
        .unwrap_or(32768);
    if ephemeral_start > 20_000 + 1_000 {
        (20_000, ephemeral_start)
    } else {
        (10_000, 20_000)
    }
}

/// xorshift64*, seeded from the clock and the pid: good enough to spread picks of concurrent
/// launchers, no dependency.
struct Rng(u64);

impl Rng {
    fn seeded() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng((t ^ (u64::from(std::process::id()) << 32)) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_ports_are_distinct() {
        let p = Ports::auto().unwrap();
        assert_eq!(
            [p.gateway, p.order, p.payment, p.inventory],
            [0; 4],
            "the services pick their own"
        );
        let mut all = vec![
            p.otlp_grpc,
            p.otlp_http,
            p.query,
            p.prometheus,
            p.health,
            p.viewer,
        ];
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 6);
        assert!(all.iter().all(|&x| x != 0));
        let (lo, hi) = pick_range();
        assert!(
            all.iter().all(|&x| x >= lo && x < hi),
            "{all:?} outside {lo}..{hi}"
        );
    }
}
