//! The consistent-hashing ring, shaped like contrib's `loadbalancingexporter` one (CRC-32, a ring
//! of 36 000 positions, 100 virtual nodes per endpoint): every endpoint gets
//! [`POSITIONS_PER_ENDPOINT`] points at `crc32("{endpoint}-{i}") % MAX_POSITIONS`; a key (the raw
//! trace id bytes, or the service name) is hashed the same way and belongs to the first point at
//! or after it, clockwise (wrapping around). The point labels are tracelab's own, so a key is not
//! guaranteed to land on the same endpoint as with a contrib agent: don't mix the two in one tier. Ties are broken by endpoint name, so the ring depends only on
//! the *set* of endpoints — every agent given the same set routes every key the same way — and
//! removing an endpoint moves only the keys that were on it.

/// Size of the ring (contrib's `maxPositions`).
pub const MAX_POSITIONS: u32 = 36_000;
/// Virtual nodes per endpoint (contrib's `defaultWeight`).
pub const POSITIONS_PER_ENDPOINT: u32 = 100;

/// CRC-32 (IEEE 802.3, the polynomial of Go's `crc32.ChecksumIEEE`).
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

#[derive(Debug, Clone, Default)]
pub struct Ring {
    /// The endpoints, sorted and deduplicated; `points` index into it.
    endpoints: Vec<String>,
    /// (position, endpoint index), sorted.
    points: Vec<(u32, usize)>,
}

impl Ring {
    pub fn new(endpoints: &[String]) -> Self {
        let mut eps: Vec<String> = endpoints.to_vec();
        eps.sort();
        eps.dedup();
        let mut points = Vec::with_capacity(eps.len() * POSITIONS_PER_ENDPOINT as usize);
        for (idx, e) in eps.iter().enumerate() {
            for i in 0..POSITIONS_PER_ENDPOINT {
                let pos = crc32(format!("{e}-{i}").as_bytes()) % MAX_POSITIONS;
                points.push((pos, idx));
            }
        }
        // Endpoint indexes follow the sorted names, so ties break by name.
        points.sort_unstable();
        Self {
            endpoints: eps,
            points,
        }
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    /// Index (into [`Ring::endpoints`]) of the endpoint owning `key`; `None` on an empty ring.
    pub fn lookup(&self, key: &[u8]) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let pos = crc32(key) % MAX_POSITIONS;
        let i = self.points.partition_point(|(p, _)| *p < pos);
        let (_, idx) = self.points[if i == self.points.len() { 0 } else { i }];
        Some(idx)
    }

    /// The endpoint owning `key`.
    pub fn endpoint_for(&self, key: &[u8]) -> Option<&str> {
        self.lookup(key).map(|i| self.endpoints[i].as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize, seed: u64) -> Vec<[u8; 16]> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                let mut id = [0u8; 16];
                for chunk in id.chunks_mut(8) {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    chunk.copy_from_slice(&s.to_le_bytes());
                }
                id
            })
            .collect()
    }

    fn eps(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn crc32_matches_the_ieee_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn ring_is_stable_whatever_the_endpoint_order() {
        let a = Ring::new(&eps(&["10.0.0.1:4317", "10.0.0.2:4317", "10.0.0.3:4317"]));
        let b = Ring::new(&eps(&["10.0.0.3:4317", "10.0.0.1:4317", "10.0.0.2:4317"]));
        let c = Ring::new(&eps(&["10.0.0.2:4317", "10.0.0.3:4317", "10.0.0.1:4317"]));
        for id in ids(2000, 7) {
            let want = a.endpoint_for(&id);
            assert_eq!(b.endpoint_for(&id), want);
            assert_eq!(c.endpoint_for(&id), want);
        }
    }

    #[test]
    fn ring_distributes_reasonably_between_two_endpoints() {
        let r = Ring::new(&eps(&["127.0.0.1:14317", "127.0.0.1:24317"]));
        for seed in [1, 42, 4711] {
            let mut first = 0;
            let keys = ids(1000, seed);
            for id in &keys {
                if r.endpoint_for(id) == Some("127.0.0.1:14317") {
                    first += 1;
                }
            }
            assert!(
                (300..=700).contains(&first),
                "seed {seed}: {first} of 1000 on the first endpoint"
            );
        }
    }

    #[test]
    fn removing_an_endpoint_moves_only_its_keys() {
        let all = eps(&["a:4317", "b:4317", "c:4317", "d:4317"]);
        let before = Ring::new(&all);
        let after = Ring::new(&eps(&["a:4317", "b:4317", "d:4317"]));
        let mut moved = 0;
        for id in ids(5000, 99) {
            let was = before.endpoint_for(&id).unwrap();
            let now = after.endpoint_for(&id).unwrap();
            if was == "c:4317" {
                moved += 1;
                assert_ne!(now, "c:4317");
            } else {
                assert_eq!(now, was, "a key not on the removed endpoint moved");
            }
        }
        assert!(moved > 0, "the removed endpoint held some keys");
    }

    #[test]
    fn empty_ring_has_no_owner() {
        assert_eq!(Ring::new(&[]).lookup(b"x"), None);
        let one = Ring::new(&eps(&["only:4317"]));
        assert_eq!(one.endpoint_for(b"anything"), Some("only:4317"));
    }
}
