//! The tail samplers' decision history (the sampling dashboard's list and timeline) and the
//! latest sampling-lab results.

use collector_api::sampling::{DecisionCounts, SamplingLabResult};
use collector_api::v1::{Decision, DecisionTrigger, SamplingDecision};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{INSERT_CHUNK, LAB_RESULTS_KEPT, StoreError, TimelineRow, TraceStore, now_us};

impl TraceStore {
    /// Persists sampling decisions (for the dashboard's history).
    pub async fn insert_decisions(&self, decisions: &[SamplingDecision]) -> Result<(), StoreError> {
        if decisions.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        for chunk in decisions.chunks(INSERT_CHUNK) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO decisions (trace_id, decision, policy, trigger, span_count, decided_at_ms, \
                 error, duration_us, processor) ",
            );
            qb.push_values(chunk, |mut b, d| {
                b.push_bind(d.trace_id.clone())
                    .push_bind(enum_text(&d.decision))
                    .push_bind(d.policy.clone())
                    .push_bind(enum_text(&d.trigger))
                    .push_bind(d.span_count as i64)
                    .push_bind(d.decided_at_ms)
                    .push_bind(d.error)
                    .push_bind(d.duration_us.min(i64::MAX as u64) as i64)
                    .push_bind(d.processor.clone());
            });
            qb.build().execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM decisions WHERE id <= (SELECT MAX(id) FROM decisions) - $1")
            .bind(self.cfg.max_decisions as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Most recent persisted decisions, newest first; optionally only those of one trace.
    pub async fn decisions(
        &self,
        trace_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SamplingDecision>, StoreError> {
        let rows = sqlx::query(
            "SELECT trace_id, decision, policy, trigger, span_count, decided_at_ms, error, duration_us, \
             processor FROM decisions \
             WHERE ($1 IS NULL OR trace_id = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(trace_id)
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(|r| SamplingDecision {
                trace_id: r.get(0),
                decision: text_enum(r.get::<String, _>(1).as_str()).unwrap_or(Decision::NotSampled),
                policy: r.get(2),
                trigger: text_enum(r.get::<String, _>(3).as_str())
                    .unwrap_or(DecisionTrigger::DecisionWait),
                span_count: r.get::<i64, _>(4) as u64,
                decided_at_ms: r.get(5),
                // NULL in decisions from before schema version 3.
                error: r.get::<Option<bool>, _>(6).unwrap_or(false),
                duration_us: r.get::<Option<i64>, _>(7).unwrap_or(0).max(0) as u64,
                processor: r.get(8),
            })
            .collect())
    }

    /// Decision counts per (processor, deciding policy, bucket) for decisions made in
    /// `[start_ms, start_ms + buckets × step_ms)`; bucket `i` starts at `start_ms + i × step_ms`.
    /// A trace is slow when its duration is at least the processor's entry in `slow_us`, else
    /// `default_slow_us`. One aggregate over the `decided_at_ms` index.
    pub async fn decision_timeline(
        &self,
        start_ms: i64,
        step_ms: i64,
        buckets: i64,
        slow_us: &[(String, u64)],
        default_slow_us: u64,
    ) -> Result<Vec<TimelineRow>, StoreError> {
        let step_ms = step_ms.max(1);
        let end_ms = start_ms.saturating_add(step_ms.saturating_mul(buckets.max(0)));
        let clamp = |v: u64| v.min(i64::MAX as u64) as i64;
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new("");
        if !slow_us.is_empty() {
            qb.push("WITH th(processor, slow_us) AS (VALUES ");
            let mut sep = qb.separated(", ");
            for (p, us) in slow_us {
                sep.push("(")
                    .push_bind_unseparated(p.clone())
                    .push_unseparated(", ")
                    .push_bind_unseparated(clamp(*us))
                    .push_unseparated(")");
            }
            qb.push(") ");
        }
        // The processor's threshold, else the default.
        let slow = |qb: &mut QueryBuilder<Sqlite>| {
            if slow_us.is_empty() {
                qb.push_bind(clamp(default_slow_us));
            } else {
                qb.push("COALESCE(th.slow_us, ")
                    .push_bind(clamp(default_slow_us))
                    .push(")");
            }
        };
        qb.push("SELECT d.processor, d.policy, (d.decided_at_ms - ")
            .push_bind(start_ms)
            .push(") / ")
            .push_bind(step_ms)
            .push(
                " AS b, \
                 SUM(d.decision = 'sampled'), SUM(d.decision <> 'sampled'), \
                 COALESCE(SUM(d.error), 0), COALESCE(SUM(d.error AND d.decision = 'sampled'), 0), \
                 COALESCE(SUM(d.duration_us >= ",
            );
        slow(&mut qb);
        qb.push("), 0), COALESCE(SUM(d.duration_us >= ");
        slow(&mut qb);
        qb.push(" AND d.decision = 'sampled'), 0) FROM decisions d ");
        if !slow_us.is_empty() {
            qb.push("LEFT JOIN th ON th.processor = d.processor ");
        }
        qb.push("WHERE d.decided_at_ms >= ")
            .push_bind(start_ms)
            .push(" AND d.decided_at_ms < ")
            .push_bind(end_ms)
            .push(" GROUP BY d.processor, d.policy, b ORDER BY d.processor, d.policy, b");
        let rows = qb.build().fetch_all(&self.read).await?;
        let n = |r: &sqlx::sqlite::SqliteRow, i: usize| r.get::<i64, _>(i).max(0) as u64;
        Ok(rows
            .iter()
            .map(|r| TimelineRow {
                processor: r.get(0),
                policy: r.get(1),
                bucket: r.get(2),
                counts: DecisionCounts {
                    kept: n(r, 3),
                    dropped: n(r, 4),
                    error_traces: n(r, 5),
                    error_kept: n(r, 6),
                    slow_traces: n(r, 7),
                    slow_kept: n(r, 8),
                },
            })
            .collect())
    }

    /// Stores a sampling-lab result (as received); keeps the latest few (`LAB_RESULTS_KEPT`).
    pub async fn insert_lab_result(&self, r: &SamplingLabResult) -> Result<(), StoreError> {
        let body = serde_json::to_string(r)?;
        let mut tx = self.write.begin().await?;
        sqlx::query("INSERT INTO lab_results (received_at_ms, body) VALUES ($1, $2)")
            .bind((now_us() / 1000) as i64)
            .bind(body)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM lab_results WHERE id <= (SELECT MAX(id) FROM lab_results) - $1")
            .bind(LAB_RESULTS_KEPT)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The sampling-lab result stored last, if any.
    pub async fn latest_lab_result(&self) -> Result<Option<SamplingLabResult>, StoreError> {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM lab_results ORDER BY id DESC LIMIT 1")
                .fetch_optional(&self.read)
                .await?;
        match body {
            None => Ok(None),
            Some(b) => Ok(Some(serde_json::from_str(&b)?)),
        }
    }
}

/// `Decision::Sampled` → `"sampled"` (the API's snake_case spelling).
fn enum_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| j.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn text_enum<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}
