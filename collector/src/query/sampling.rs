//! The sampling dashboard's routes: `GET /api/v1/sampling/timeline` (decisions persisted in a
//! store, bucketed per tail-sampling processor and deciding policy) and `PUT`/`GET
//! /api/v1/sampling/lab` (the latest `loadgen sampling-lab` result, kept in this query API's store
//! so it survives a restart). Types: `collector_api::sampling`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use collector_api::sampling::{
    DEFAULT_SLOW_MS, DEFAULT_TIMELINE_BUCKETS, MAX_LAB_RESULT_BYTES, MAX_LAB_STRATEGIES,
    MAX_TIMELINE_BUCKETS, PolicyTimeline, ProcessorTimeline, SamplingLabResult, SamplingTimeline,
    SlowSource, TimelineBucket,
};

use super::{AppState, Pairs, QueryError, V1Failure, params};
use crate::store::TimelineRow;

/// `lookback` when not given.
const DEFAULT_LOOKBACK_MS: u64 = 15 * 60 * 1000;
/// Buckets are whole seconds at least: decisions carry ms, but finer buckets only add noise.
const MIN_STEP_MS: u64 = 1000;

/// The bucket grid of one timeline request: `buckets` steps of `step_ms` ending at the first step
/// boundary at or after `end_ms`, so a refreshed chart keeps its bucket edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Grid {
    pub start_ms: i64,
    pub step_ms: i64,
    pub buckets: i64,
}

impl Grid {
    pub fn end_ms(&self) -> i64 {
        self.start_ms + self.step_ms * self.buckets
    }
}

/// `lookback`, `step` (Go durations; `lookback` also whole days) and `end` (unix ms, default now).
pub(super) fn parse_grid(q: &[(String, String)], now_ms: u64) -> Result<Grid, QueryError> {
    let lookback_ms = match params::get(q, "lookback").filter(|v| !v.is_empty()) {
        Some(v) => params::lookback_us(v)? / 1000,
        None => DEFAULT_LOOKBACK_MS,
    };
    if lookback_ms == 0 {
        return Err(QueryError::BadRequest(
            "parameter 'lookback' must be longer than 0".into(),
        ));
    }
    let step_ms = match params::opt_duration_us(q, "step")? {
        Some(us) => us / 1000,
        // About DEFAULT_TIMELINE_BUCKETS buckets of whole seconds.
        None => {
            lookback_ms
                .div_ceil(DEFAULT_TIMELINE_BUCKETS)
                .div_ceil(MIN_STEP_MS)
                .max(1)
                * MIN_STEP_MS
        }
    };
    if step_ms < MIN_STEP_MS {
        return Err(QueryError::BadRequest(format!(
            "parameter 'step' must be at least 1s, got {step_ms} ms"
        )));
    }
    let buckets = lookback_ms.div_ceil(step_ms);
    if buckets > MAX_TIMELINE_BUCKETS {
        return Err(QueryError::BadRequest(format!(
            "lookback / step = {buckets} buckets; at most {MAX_TIMELINE_BUCKETS} (raise 'step' or \
             shorten 'lookback')"
        )));
    }
    let end_ms = params::opt_u64(q, "end")?.unwrap_or(now_ms);
    let end_aligned = end_ms.div_ceil(step_ms).saturating_mul(step_ms);
    let too_far = || QueryError::BadRequest(format!("parameter 'end' {end_ms} is out of range"));
    let end_aligned = i64::try_from(end_aligned).map_err(|_| too_far())?;
    Ok(Grid {
        start_ms: end_aligned - (step_ms * buckets) as i64,
        step_ms: step_ms as i64,
        buckets: buckets as i64,
    })
}

/// A processor's slow threshold and where it came from.
struct Slow {
    ms: u64,
    source: SlowSource,
    policy: Option<String>,
}

/// What this collector knows of one processor feeding the store.
struct Configured {
    policies: Vec<(String, String)>,
    slow: Slow,
}

pub(super) async fn timeline(
    State(s): State<AppState>,
    Query(q): Pairs,
) -> Result<Json<SamplingTimeline>, V1Failure> {
    let (store_id, store) = match params::get(&q, "store").filter(|v| !v.is_empty()) {
        Some(id) if id != &*s.own_id => (id.to_string(), s.stores.resolve(id)?),
        _ => (s.own_id.to_string(), s.store.clone()),
    };
    let grid = parse_grid(&q, params::now_us() / 1000)?;
    let slow_param = params::opt_u64(&q, "slowMs")?;
    let configured: BTreeMap<String, Configured> = s
        .sampling
        .tail_samplers_feeding(&store_id)
        .into_iter()
        .map(|st| {
            let slow = match (slow_param, st.latency_threshold()) {
                (Some(ms), _) => Slow {
                    ms,
                    source: SlowSource::Parameter,
                    policy: None,
                },
                (None, Some((policy, ms))) => Slow {
                    ms,
                    source: SlowSource::LatencyPolicy,
                    policy: Some(policy),
                },
                (None, None) => default_slow(),
            };
            (
                st.id().to_string(),
                Configured {
                    policies: st.policy_types(),
                    slow,
                },
            )
        })
        .collect();
    let per_processor: Vec<(String, u64)> = configured
        .iter()
        .filter(|(_, c)| c.slow.source == SlowSource::LatencyPolicy)
        .map(|(id, c)| (id.clone(), c.slow.ms * 1000))
        .collect();
    let default_ms = slow_param.unwrap_or(DEFAULT_SLOW_MS);
    let rows = store
        .decision_timeline(
            grid.start_ms,
            grid.step_ms,
            grid.buckets,
            &per_processor,
            default_ms * 1000,
        )
        .await?;
    let slow_for_unconfigured = || match slow_param {
        Some(ms) => Slow {
            ms,
            source: SlowSource::Parameter,
            policy: None,
        },
        None => default_slow(),
    };
    Ok(Json(SamplingTimeline {
        store: store_id,
        start_ms: grid.start_ms,
        end_ms: grid.end_ms(),
        step_ms: grid.step_ms,
        processors: assemble(grid, configured, rows, slow_for_unconfigured),
    }))
}

fn default_slow() -> Slow {
    Slow {
        ms: DEFAULT_SLOW_MS,
        source: SlowSource::Default,
        policy: None,
    }
}

/// Dense per-bucket series from the aggregate's sparse rows: configured processors first (with all
/// their policies, decided or not), then processors only the history knows.
fn assemble(
    grid: Grid,
    configured: BTreeMap<String, Configured>,
    rows: Vec<TimelineRow>,
    slow_for_unconfigured: impl Fn() -> Slow,
) -> Vec<ProcessorTimeline> {
    let empty: Vec<TimelineBucket> = (0..grid.buckets)
        .map(|i| TimelineBucket {
            start_ms: grid.start_ms + i * grid.step_ms,
            ..Default::default()
        })
        .collect();
    let new_policy = |policy: Option<String>, policy_type: Option<String>| PolicyTimeline {
        policy,
        policy_type,
        total: Default::default(),
        buckets: empty.clone(),
    };
    let new_processor = |processor: String, configured: bool, slow: Slow| ProcessorTimeline {
        processor,
        configured,
        slow_ms: slow.ms,
        slow_source: slow.source,
        slow_policy: slow.policy,
        total: Default::default(),
        buckets: empty.clone(),
        policies: Vec::new(),
    };
    let mut out: Vec<ProcessorTimeline> = configured
        .into_iter()
        .map(|(id, c)| {
            let mut p = new_processor(id, true, c.slow);
            p.policies = c
                .policies
                .into_iter()
                .map(|(name, ty)| new_policy(Some(name), Some(ty)))
                .collect();
            p
        })
        .collect();
    let n_configured = out.len();
    // Rows are ordered by processor, policy (NULL first), bucket.
    for r in rows {
        let Ok(i) = usize::try_from(r.bucket) else {
            continue;
        };
        if i >= empty.len() {
            continue;
        }
        let pi = match out.iter().position(|p| p.processor == r.processor) {
            Some(pi) => pi,
            None => {
                out.push(new_processor(
                    r.processor.clone(),
                    false,
                    slow_for_unconfigured(),
                ));
                out.len() - 1
            }
        };
        let p = &mut out[pi];
        let qi = match p.policies.iter().position(|x| x.policy == r.policy) {
            Some(qi) => qi,
            None => {
                p.policies.push(new_policy(r.policy.clone(), None));
                p.policies.len() - 1
            }
        };
        p.buckets[i].counts.add(&r.counts);
        p.total.add(&r.counts);
        let pol = &mut p.policies[qi];
        pol.buckets[i].counts.add(&r.counts);
        pol.total.add(&r.counts);
    }
    for p in &mut out {
        // Configured policies stay in config order; the others follow by name, "no policy" last.
        let configured_policies = p
            .policies
            .iter()
            .filter(|x| x.policy_type.is_some())
            .count();
        p.policies[configured_policies..]
            .sort_by(|a, b| (a.policy.is_none(), &a.policy).cmp(&(b.policy.is_none(), &b.policy)));
    }
    out[n_configured..].sort_by(|a, b| a.processor.cmp(&b.processor));
    out
}

pub(super) async fn put_lab(
    State(s): State<AppState>,
    body: Result<Json<SamplingLabResult>, JsonRejection>,
) -> Result<StatusCode, V1Failure> {
    let Json(r) = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            QueryError::TooLarge(format!(
                "a sampling-lab result is at most {MAX_LAB_RESULT_BYTES} bytes"
            ))
        } else {
            QueryError::BadRequest(format!(
                "expected a sampling-lab result as JSON (what `loadgen sampling-lab` sends): {}",
                e.body_text()
            ))
        }
    })?;
    if r.strategies.is_empty() || r.strategies.len() > MAX_LAB_STRATEGIES {
        return Err(QueryError::BadRequest(format!(
            "a sampling-lab result lists 1 to {MAX_LAB_STRATEGIES} strategies, this one {}",
            r.strategies.len()
        ))
        .into());
    }
    s.store.insert_lab_result(&r).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn get_lab(
    State(s): State<AppState>,
) -> Result<Json<SamplingLabResult>, V1Failure> {
    s.store.latest_lab_result().await?.map(Json).ok_or_else(|| {
        QueryError::NotFound(
            "no sampling-lab result yet: run `loadgen sampling-lab` (`make sampling-lab`)".into(),
        )
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Vec<(String, String)> {
        s.split('&')
            .filter(|p| !p.is_empty())
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_grid_is_aligned_to_the_step_and_bounded() {
        let now = 1_700_000_012_345;
        let g = parse_grid(&q(""), now).unwrap();
        assert_eq!((g.step_ms, g.buckets), (15_000, 60), "15m in 60 buckets");
        assert_eq!(g.end_ms() % 15_000, 0);
        assert!(g.end_ms() >= now as i64 && g.end_ms() - (now as i64) < 15_000);
        let g = parse_grid(&q("lookback=1h&step=1m&end=120000"), now).unwrap();
        assert_eq!(
            (g.start_ms, g.end_ms(), g.buckets),
            (120_000 - 3_600_000, 120_000, 60)
        );
        // 7 s over 60 buckets: whole seconds, rounded up.
        let g = parse_grid(&q("lookback=7s"), now).unwrap();
        assert_eq!((g.step_ms, g.buckets), (1000, 7));
        let g = parse_grid(&q("lookback=2d"), now).unwrap();
        assert_eq!(g.step_ms, 2 * 86_400_000 / 60);
        for bad in [
            "step=999ms",
            "lookback=24h&step=1s",
            "lookback=0s",
            "step=soon",
            "end=x",
        ] {
            assert!(parse_grid(&q(bad), now).is_err(), "{bad}");
        }
    }
}
