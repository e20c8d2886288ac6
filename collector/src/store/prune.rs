//! Retention and bounds: whole traces leave, oldest first, by age, span count and database size;
//! logs by age and count, decisions by age; the service map follows the spans it describes.

use std::sync::atomic::Ordering;

use sqlx::{QueryBuilder, Sqlite};

use super::{ID_CHUNK, PruneReport, StoreError, TraceStore, lock, now_us, push_id_list};

impl TraceStore {
    /// Removes whole traces, oldest first, until at most `target` spans remain.
    pub(super) async fn prune_to_span_count(&self, target: u64) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        // Each round removes the traces of the oldest `excess` spans (at least that many spans).
        for _ in 0..16 {
            let count = self.spans.load(Ordering::Relaxed);
            if count <= target {
                break;
            }
            let excess = (count - target).max(count / 100);
            let ids: Vec<Vec<u8>> = sqlx::query_scalar(
                "SELECT DISTINCT trace_id FROM (SELECT trace_id FROM spans ORDER BY start_us LIMIT $1)",
            )
            .bind(excess as i64)
            .fetch_all(&self.write)
            .await?;
            if ids.is_empty() {
                break;
            }
            let r = self.delete_traces(&ids).await?;
            report.traces += r.traces;
            report.spans += r.spans;
        }
        if report.spans > 0 {
            self.map_prune(i64::MIN, now_us() as i64).await?;
        }
        Ok(report)
    }

    async fn delete_traces(&self, ids: &[Vec<u8>]) -> Result<PruneReport, StoreError> {
        let mut tx = self.write.begin().await?;
        let mut spans = 0;
        // Counted inside the transaction: a concurrent prune may have removed some already.
        let traces = Self::count_stored_traces(&mut tx, ids).await?;
        for chunk in ids.chunks(ID_CHUNK) {
            for table in ["attrs", "scope_attrs", "spans"] {
                let mut qb: QueryBuilder<Sqlite> =
                    QueryBuilder::new(format!("DELETE FROM {table} WHERE trace_id IN "));
                push_id_list(&mut qb, chunk.iter().cloned());
                let n = qb.build().execute(&mut *tx).await?.rows_affected();
                if table == "spans" {
                    spans += n;
                }
            }
        }
        tx.commit().await?;
        self.span_generation.fetch_add(1, Ordering::Release);
        self.spans.fetch_sub(
            spans.min(self.spans.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        self.traces.fetch_sub(
            traces.min(self.traces.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        Ok(PruneReport {
            traces,
            spans,
            ..Default::default()
        })
    }

    /// Enforces every bound: age (retention), span count, database size, log count. Called
    /// periodically by the exporter; also safe to call any time.
    pub async fn prune(&self) -> Result<PruneReport, StoreError> {
        self.prune_at(now_us()).await
    }

    /// [`prune`](Self::prune) as if the time were `now_us` (tests).
    pub async fn prune_at(&self, now_us: u64) -> Result<PruneReport, StoreError> {
        let mut report = PruneReport::default();
        let cutoff = now_us.saturating_sub(self.cfg.retention.as_micros() as u64) as i64;
        for _ in 0..1000 {
            let ids: Vec<Vec<u8>> = sqlx::query_scalar(
                "SELECT DISTINCT trace_id FROM spans WHERE start_us < $1 LIMIT 2000",
            )
            .bind(cutoff)
            .fetch_all(&self.write)
            .await?;
            if ids.is_empty() {
                break;
            }
            let r = self.delete_traces(&ids).await?;
            report.traces += r.traces;
            report.spans += r.spans;
        }
        let r = self.prune_to_span_count(self.cfg.max_spans).await?;
        report.traces += r.traces;
        report.spans += r.spans;
        // Size bound: shrink the span count in proportion to the excess (plus 10% headroom), and
        // repeat while still over (indexes and free pages make bytes per span uneven).
        let max_bytes = self.cfg.max_size_mib * 1024 * 1024;
        for _ in 0..10 {
            let st = self.stats().await?;
            if st.used_bytes <= max_bytes || st.spans == 0 {
                break;
            }
            let target = (st.spans as f64 * (max_bytes as f64 / st.used_bytes as f64) * 0.9) as u64;
            let r = self.prune_to_span_count(target.min(st.spans - 1)).await?;
            report.traces += r.traces;
            report.spans += r.spans;
        }
        let logs = sqlx::query("DELETE FROM logs WHERE time_us < $1")
            .bind(cutoff)
            .execute(&self.write)
            .await?;
        report.logs = logs.rows_affected();
        self.logs.fetch_sub(
            report.logs.min(self.logs.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        let d = sqlx::query("DELETE FROM decisions WHERE decided_at_ms < $1")
            .bind(cutoff / 1000)
            .execute(&self.write)
            .await?;
        report.decisions = d.rows_affected();
        if report.spans > 0 {
            // Operations whose spans are all gone leave the service/operation lists.
            sqlx::query(
                "DELETE FROM operations WHERE NOT EXISTS (SELECT 1 FROM spans s \
                 WHERE s.service = operations.service AND s.name = operations.name)",
            )
            .execute(&self.write)
            .await?;
            let ops: Vec<(String, String, i32)> =
                sqlx::query_as("SELECT service, name, kind FROM operations")
                    .fetch_all(&self.write)
                    .await?;
            *lock(&self.operations) = ops.into_iter().collect();
        }
        self.map_prune(cutoff, now_us as i64).await?;
        // Planner statistics for the search queries; cheap with analysis_limit.
        sqlx::query("PRAGMA optimize").execute(&self.write).await?;
        Ok(report)
    }
}
