//! The request plan: every request of a run — when it is due, which scenario, which body — drawn
//! up front from one seeded generator, so the same `--seed`, `--rate`, `--duration` and `--mix`
//! give the same sequence on every run and every machine (the sampling lab compares strategies on
//! exactly that sequence).
//!
//! Arrival times are fixed before the first request leaves: the schedule is an open model and does
//! not wait for the system under test (no coordinated omission).

use std::time::Duration;

use contracts::orders::{CreateOrderRequest, LineItem, PaymentInfo};
use contracts::scenario::Scenario;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::mix::Mix;

/// SKUs order-service sells with plenty of stock (`services/*/migrations/*catalogue*`); a
/// checkout buys one to three of them.
pub const IN_STOCK: &[&str] = &[
    "LAPTOP-1",
    "MOUSE-1",
    "KEYBOARD-1",
    "MONITOR-1",
    "HEADPHONES-1",
    "CABLE-1",
];
/// The SKU with an empty shelf: `inventory.out_of_stock` orders it so inventory really refuses.
pub const SOLD_OUT: &str = "SOLDOUT-1";
/// The provider's test token that charges successfully (`payment.declined` is decided by the
/// scenario header, which the provider simulator honours).
pub const TEST_TOKEN: &str = "tok_test_123";

/// How arrivals are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Exactly `1/rate` apart: a constant arrival rate.
    #[default]
    Uniform,
    /// Exponential gaps with mean `1/rate` (a Poisson process, burstier, still seeded).
    Poisson,
}

/// One planned request.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub index: u64,
    /// Due time since the start of the run.
    pub at: Duration,
    pub scenario: Scenario,
    pub body: CreateOrderRequest,
}

/// The whole run, in due order.
pub fn plan(mix: &Mix, rate: f64, duration: Duration, arrival: Arrival, seed: u64) -> Vec<Planned> {
    let mut rng = StdRng::seed_from_u64(seed);
    let count = (rate * duration.as_secs_f64()).floor() as u64;
    let gap = 1.0 / rate;
    let mut t = 0.0f64;
    (0..count)
        .map(|index| {
            let at = match arrival {
                Arrival::Uniform => index as f64 * gap,
                Arrival::Poisson => {
                    // Inverse CDF of the exponential distribution; 1 - u is in (0, 1].
                    let u: f64 = rng.random();
                    let now = t;
                    t += -(1.0 - u).ln() * gap;
                    now
                }
            };
            let scenario = mix.pick(rng.random_range(0..mix.total()));
            let body = body_for(scenario, &mut rng);
            Planned {
                index,
                at: Duration::from_secs_f64(at),
                scenario,
                body,
            }
        })
        .collect()
}

fn body_for(scenario: Scenario, rng: &mut StdRng) -> CreateOrderRequest {
    let items = if scenario == Scenario::InventoryOutOfStock {
        vec![LineItem {
            sku: SOLD_OUT.into(),
            qty: 1,
        }]
    } else {
        let n = rng.random_range(1..=3usize);
        let mut skus: Vec<&str> = Vec::with_capacity(n);
        while skus.len() < n {
            let sku = IN_STOCK[rng.random_range(0..IN_STOCK.len())];
            if !skus.contains(&sku) {
                skus.push(sku);
            }
        }
        skus.into_iter()
            .map(|sku| LineItem {
                sku: sku.into(),
                qty: rng.random_range(1..=2),
            })
            .collect()
    };
    CreateOrderRequest {
        items,
        payment: PaymentInfo {
            method: "card".into(),
            token: TEST_TOKEN.into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_plan_and_another_seed_another() {
        let mix = Mix::default();
        let a = plan(&mix, 50.0, Duration::from_secs(4), Arrival::Poisson, 7);
        let b = plan(&mix, 50.0, Duration::from_secs(4), Arrival::Poisson, 7);
        let c = plan(&mix, 50.0, Duration::from_secs(4), Arrival::Poisson, 8);
        assert_eq!(a.len(), 200);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn uniform_arrivals_are_one_gap_apart_and_bodies_are_valid() {
        let mix: Mix = "checkout=1,inventory.out_of_stock=1".parse().unwrap();
        let p = plan(&mix, 20.0, Duration::from_secs(1), Arrival::Uniform, 1);
        assert_eq!(p.len(), 20);
        assert_eq!(p[3].at, Duration::from_millis(150));
        for r in &p {
            r.body.validate().unwrap();
            let sold_out = r.body.items.iter().any(|i| i.sku == SOLD_OUT);
            assert_eq!(sold_out, r.scenario == Scenario::InventoryOutOfStock);
        }
    }

    #[test]
    fn the_mix_is_honoured_in_proportion() {
        let mix = Mix::default();
        let p = plan(&mix, 1000.0, Duration::from_secs(10), Arrival::Uniform, 3);
        let slow = p
            .iter()
            .filter(|r| r.scenario == Scenario::PaymentSlow)
            .count();
        // 5 % of 10,000 = 500; binomial sd ≈ 22, so ± 110 is five standard deviations.
        assert!((390..=610).contains(&slow), "{slow}");
    }

    #[test]
    fn poisson_arrivals_keep_the_mean_rate() {
        let p = plan(
            &Mix::default(),
            100.0,
            Duration::from_secs(100),
            Arrival::Poisson,
            11,
        );
        let last = p.last().unwrap().at.as_secs_f64();
        // 10,000 gaps of mean 10 ms: the sum is 100 s ± 1 s (sd), so ± 5 s.
        assert!((95.0..105.0).contains(&last), "{last}");
    }
}
