//! The sampling lab on a short run against the real stack with the lab's collector config
//! (`collector/config/sampling-lab.yaml`, what `tracelab up --sampling lab` runs): every strategy
//! sees the same requests, and each keeps what its policy says; the result is stored in the
//! collector for the sampling dashboard.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use lab::harness::{Shared, bin_dir, require_binaries, start_shared};
use lab::{Sampling, Stack};
use loadgen::cli::LoadArgs;
use loadgen::sampling::{LabConfig, LabSummary, StrategyResult, sampling_lab};

fn stack() -> &'static Stack {
    static S: OnceLock<Result<Shared, String>> = OnceLock::new();
    match S.get_or_init(|| {
        require_binaries(&bin_dir(), &[]);
        start_shared("sampling-lab", |o| o.sampling = Sampling::Lab)
    }) {
        Ok(s) => &s.stack,
        Err(e) => panic!("{e}"),
    }
}

fn strategy<'a>(s: &'a LabSummary, name: &str) -> &'a StrategyResult {
    s.strategies
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no strategy {name} in {:?}", s.strategies))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_strategy_keeps_what_its_policy_says_of_the_same_requests() {
    let stack = stack();
    // The flags as a user types them, through `run`'s own parser.
    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        load: LoadArgs,
    }
    let mut load = <Flags as clap::Parser>::parse_from([
        "loadgen",
        "--rate",
        "20",
        "--duration",
        "6s",
        "--mix",
        "checkout=70,payment.declined=15,payment.slow=15",
        "--seed",
        "11",
        "--progress",
        "lines",
    ])
    .load;
    load.target = stack.urls.gateway.clone();
    let cfg = LabConfig {
        run: load.config(),
        query: stack.urls.query.clone(),
        slow: Duration::from_secs(1),
        settle_timeout: Duration::from_secs(90),
    };
    let (s, output) = sampling_lab(&cfg).await.unwrap_or_else(|e| panic!("{e}"));
    let table = s.table();
    eprintln!("{}\n{table}", s.run.table());
    let t = &s.truth;
    assert_eq!(s.requests, 120);
    assert_eq!(s.run.errors, 0, "{}", s.run.table());
    assert_eq!(t.traced_requests, 120, "every answer carries X-Trace-Id");
    assert!(t.error_traces >= 5 && t.slow_traces >= 5, "{table}");

    let all = strategy(&s, "all");
    assert_eq!(
        all.traces_kept, t.traced_requests,
        "keep-everything keeps all:\n{table}"
    );
    assert_eq!(all.partial_traces, 0);
    assert!(all.bytes_stored > 0);

    let errors = strategy(&s, "errors");
    assert_eq!(errors.error_traces_kept, t.error_traces, "{table}");
    assert_eq!(
        errors.traces_kept, t.error_traces,
        "errors-only keeps nothing else:\n{table}"
    );

    let tail = strategy(&s, "tail");
    assert_eq!(
        tail.error_traces_kept_pct, 100.0,
        "tail keeps every error:\n{table}"
    );
    assert_eq!(
        tail.slow_traces_kept_pct, 100.0,
        "tail keeps every slow trace:\n{table}"
    );
    assert!(tail.traces_kept < all.traces_kept);

    // Head sampling keeps a trace when the FNV-1a hash of its id falls in the lowest 10 % of
    // the buckets: exactly the traces the collector's own function picks ...
    let head = strategy(&s, "head");
    let expected: BTreeSet<&str> = output
        .outcomes
        .iter()
        .filter_map(|o| o.trace_id.as_deref())
        .filter(|id| {
            let bytes: Vec<u8> = (0..16)
                .map(|i| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            collector::processors::probabilistic_sampler::keep_trace(&bytes, 0, 10.0)
        })
        .collect();
    assert_eq!(head.traces_kept, expected.len() as u64, "{table}");
    // ... which for random trace ids is 10 % give or take chance: within 4 binomial standard
    // deviations of 12 traces (± 13 points at n = 120).
    let n = t.traces as f64;
    let sd = (n * 0.1 * 0.9).sqrt();
    assert!(
        (head.traces_kept as f64 - n * 0.1).abs() <= 4.0 * sd,
        "head kept {} of {n} traces:\n{table}",
        head.traces_kept
    );

    // Rate-limited: 500 spans per second of decisions; ~37 spans a trace at 20 traces/s is
    // more than that, so it keeps some traces and not all, within its budget.
    let rate = strategy(&s, "rate");
    assert!(
        rate.traces_kept > 0 && rate.traces_kept < all.traces_kept,
        "{table}"
    );
    let budget = 500.0 * (s.run.elapsed_s + 3.0);
    assert!(rate.spans_kept as f64 <= budget, "{table}");

    // The sampled stores are smaller than the one that keeps everything.
    for r in [&head, &tail, &errors] {
        assert!(r.bytes_stored <= all.bytes_stored, "{table}");
    }
    assert!(
        table.contains("errors kept") && table.contains("per 1M req"),
        "{table}"
    );

    // The run's result is the collector's latest sampling-lab result (the dashboard reads it).
    let resp = reqwest::get(format!("{}/api/v1/sampling/lab", stack.urls.query))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let stored: collector_api::sampling::SamplingLabResult = resp.json().await.unwrap();
    let sent = s.result();
    // JSON carries the percentages to ~1e-15 (serde_json's float parsing is not exact to the
    // last bit); everything else exactly.
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    assert_eq!(
        (
            stored.finished_at_ms,
            stored.requests,
            stored.seed,
            stored.slow_ms
        ),
        (sent.finished_at_ms, sent.requests, sent.seed, sent.slow_ms)
    );
    assert_eq!((&stored.truth, &stored.mix), (&sent.truth, &sent.mix));
    assert_eq!(stored.strategies.len(), sent.strategies.len());
    for (a, b) in stored.strategies.iter().zip(&sent.strategies) {
        assert_eq!(
            (
                &a.name,
                &a.store,
                a.traces_kept,
                a.spans_kept,
                a.error_traces_kept
            ),
            (
                &b.name,
                &b.store,
                b.traces_kept,
                b.spans_kept,
                b.error_traces_kept
            )
        );
        assert_eq!(
            (a.slow_traces_kept, a.partial_traces, a.bytes_stored),
            (b.slow_traces_kept, b.partial_traces, b.bytes_stored)
        );
        for (x, y) in [
            (a.traces_kept_pct, b.traces_kept_pct),
            (a.spans_kept_pct, b.spans_kept_pct),
            (a.error_traces_kept_pct, b.error_traces_kept_pct),
            (a.slow_traces_kept_pct, b.slow_traces_kept_pct),
            (a.bytes_per_million_requests, b.bytes_per_million_requests),
        ] {
            assert!(close(x, y), "{} stored {x}, measured {y}", a.name);
        }
    }
}
