//! DB CLIENT spans: semantic-convention attributes, ERROR on failure, exact end
//! times around real sqlx calls on SQLite (whose worker thread holds span clones), and
//! sqlx's own log events (the slow-statement warning) recorded inside the DB span.

use std::time::Duration;

use opentelemetry::trace::SpanKind;
use telemetry::testing::{self, attribute, span_named};
use tracing::Instrument;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_spans_follow_semconv_and_record_errors() {
    let t = testing::init();
    let root = tracing::info_span!("handler");
    let trace_id = root.in_scope(|| telemetry::current_trace_id().unwrap());
    async {
        let ok = telemetry::db::span(
            "sqlite",
            "INSERT",
            "orders",
            "INSERT INTO orders (id) VALUES ($1)",
        );
        let r: Result<u32, String> = telemetry::db::traced(ok, async { Ok(1) }).await;
        assert_eq!(r, Ok(1));
        let bad = telemetry::db::span(
            "sqlite",
            "UPDATE",
            "stock",
            "UPDATE stock SET qty = qty - $1 WHERE sku = $2",
        );
        let r: Result<u32, String> =
            telemetry::db::traced(bad, async { Err("database is locked".to_owned()) }).await;
        assert!(r.is_err());
    }
    .instrument(root)
    .await;

    let spans = t.wait_for_spans(&trace_id, |s| s.len() >= 3, Duration::from_secs(5));
    let insert = span_named(&spans, "INSERT orders");
    assert_eq!(insert.span_kind, SpanKind::Client);
    assert_eq!(
        attribute(insert, "db.system.name").as_deref(),
        Some("sqlite")
    );
    assert_eq!(
        attribute(insert, "db.operation.name").as_deref(),
        Some("INSERT")
    );
    assert_eq!(
        attribute(insert, "db.collection.name").as_deref(),
        Some("orders")
    );
    assert_eq!(
        attribute(insert, "db.query.text").as_deref(),
        Some("INSERT INTO orders (id) VALUES ($1)")
    );
    assert_eq!(insert.status, opentelemetry::trace::Status::Unset);
    let update = span_named(&spans, "UPDATE stock");
    assert!(
        matches!(update.status, opentelemetry::trace::Status::Error { .. }),
        "{:?}",
        update.status
    );
    assert_eq!(
        attribute(update, "error.type").as_deref(),
        Some("database is locked")
    );
}

/// Guards the ordering a waterfall relies on. The race it guards against (sqlx's SQLite
/// worker dropping its span clone after answering) shows only under CPU contention, so a
/// pass on an idle machine proves less than a failure would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_span_ends_before_the_next_step_starts() {
    let t = testing::init();
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect("sqlite:file:db_span_timing?mode=memory&cache=shared")
        .await
        .unwrap();
    sqlx::query("CREATE TABLE stock (sku TEXT PRIMARY KEY, qty INTEGER NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let root = tracing::info_span!("reserve");
    let trace_id = root.in_scope(|| telemetry::current_trace_id().unwrap());
    async {
        for i in 0..20 {
            let span = telemetry::db::span(
                "sqlite",
                "INSERT",
                "stock",
                "INSERT INTO stock (sku, qty) VALUES ($1, $2)",
            );
            telemetry::db::traced(
                span,
                sqlx::query("INSERT INTO stock (sku, qty) VALUES ($1, $2)")
                    .bind(format!("SKU-{i}"))
                    .bind(10_i64)
                    .execute(&pool),
            )
            .await
            .unwrap();
        }
    }
    .instrument(root)
    .await;

    let mut spans = t.wait_for_spans(&trace_id, |s| s.len() >= 21, Duration::from_secs(10));
    spans.retain(|s| s.name == "INSERT stock");
    assert_eq!(spans.len(), 20);
    spans.sort_by_key(|s| s.start_time);
    for pair in spans.windows(2) {
        assert!(
            pair[0].end_time <= pair[1].start_time,
            "a DB span ended after the next call started: {:?} > {:?}",
            pair[0].end_time,
            pair[1].start_time
        );
    }
}

/// sqlx's slow-statement warning (here: every statement, with a zero threshold) is an
/// event of the DB span, with sqlx's fields; the caller's span still ends after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_slow_statement_warning_lands_in_the_db_span() {
    use sqlx::ConnectOptions as _;
    let t = testing::init();
    let options: sqlx::sqlite::SqliteConnectOptions =
        "sqlite:file:db_slow_statement?mode=memory&cache=shared"
            .parse()
            .unwrap();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.log_slow_statements(log::LevelFilter::Warn, Duration::ZERO))
        .await
        .unwrap();
    let root = tracing::info_span!("slow_reserve");
    let trace_id = root.in_scope(|| telemetry::current_trace_id().unwrap());
    async {
        let span = telemetry::db::span("sqlite", "SELECT", "stock", "SELECT 1");
        telemetry::db::traced(span, sqlx::query("SELECT 1").execute(&pool))
            .await
            .unwrap();
    }
    .instrument(root)
    .await;

    let spans = t.wait_for_spans(
        &trace_id,
        |s| s.iter().any(|s| s.name == "slow_reserve"),
        Duration::from_secs(10),
    );
    let root = span_named(&spans, "slow_reserve");
    let db = span_named(&spans, "SELECT stock");
    assert!(
        testing::is_child_of(db, root),
        "the DB span stays in the trace"
    );
    let warning = "slow statement: execution time exceeded alert threshold";
    assert!(
        testing::event_names(db).iter().any(|n| n == warning),
        "events of the DB span: {:?}",
        testing::event_names(db)
    );
    assert_eq!(
        testing::event_attr(db, warning, "level").as_deref(),
        Some("WARN")
    );
    assert_eq!(
        testing::event_attr(db, warning, "target").as_deref(),
        Some("sqlx::query")
    );
    assert!(testing::event_attr(db, warning, "elapsed_secs").is_some());
    assert!(db.end_time <= root.end_time);
}
