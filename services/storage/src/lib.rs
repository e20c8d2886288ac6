//! Database plumbing shared by the checkout services: one sqlx `Any` pool over SQLite or
//! PostgreSQL, chosen by the URL, with the service's migrations (written to run unchanged on
//! both engines) applied at start-up.
//!
//! Each service keeps its own `migrations/` (`db::MIGRATOR`); `service_kit::DatabaseArgs::connect`
//! passes them here.

#[cfg(feature = "testing")]
pub mod testing;

use std::{path::Path, time::Duration};

use anyhow::Context as _;
use sqlx::{
    AnyPool, ConnectOptions,
    any::{AnyConnectOptions, AnyPoolOptions},
    migrate::Migrator,
};

/// Statements slower than this are logged by sqlx itself as a WARN `slow statement` event — inside
/// the statement's DB span (`telemetry::db::traced`), so the trace of `inventory.slow_query` carries
/// the database layer's own warning. sqlx's default of 1 s would never fire on a demo's tables.
pub const SLOW_STATEMENT: Duration = Duration::from_millis(10);

/// SQLite's default, `FULL`, syncs the WAL to disk at every commit while holding the database's
/// one write lock, so each service's writes queue behind disk flushes (about 1,400 of 2,000
/// checkouts at 100/s had a statement over [`SLOW_STATEMENT`], and the stack topped out near
/// 65 checkouts/s). In WAL mode `NORMAL` syncs at checkpoints only: a committed transaction
/// survives a crash of the service, and only a power loss can take the last ones back — what
/// SQLite's documentation recommends for WAL.
pub const SQLITE_SYNCHRONOUS: &str = "PRAGMA synchronous = NORMAL";

/// Opens the pool for `url` and brings `service`'s schema up to date with `migrator`.
///
/// - `sqlite:data/x.db?mode=rwc`: creates `data/`, switches the file to WAL so readers and the
///   writer stop blocking each other under load, and sets `synchronous = NORMAL` on every
///   connection ([`SQLITE_SYNCHRONOUS`]).
/// - `sqlite:file:NAME?mode=memory&cache=shared` (tests): one long-lived connection — the
///   database lives only as long as a connection to it, and shared-cache table locks fail a
///   concurrent writer at once instead of waiting.
/// - `postgres://…`: a pool of `max_connections`.
pub async fn connect(
    url: &str,
    max_connections: u32,
    migrator: &Migrator,
    service: &str,
) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    ensure_sqlite_parent_dir(url)?;
    let in_memory = url.contains("mode=memory");
    let options = if in_memory {
        AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        AnyPoolOptions::new().max_connections(max_connections.max(1))
    };
    let options = if url.starts_with("sqlite:") && !in_memory {
        // A per-connection setting: every connection of the pool gets it when it opens.
        options.after_connect(|conn, _meta| {
            Box::pin(async move {
                sqlx::Executor::execute(&mut *conn, SQLITE_SYNCHRONOUS).await?;
                Ok(())
            })
        })
    } else {
        options
    };
    let connect = url
        .parse::<AnyConnectOptions>()
        .with_context(|| format!("parsing the database URL {}", redact_url(url)))?
        .log_slow_statements(log::LevelFilter::Warn, SLOW_STATEMENT);
    let pool = options
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(connect)
        .await
        .with_context(|| format!("connecting to {}", redact_url(url)))?;
    if url.starts_with("sqlite:") && !in_memory {
        // The mode is stored in the database file; setting it at every start is cheap.
        sqlx::query("PRAGMA journal_mode = WAL")
            .fetch_optional(&pool)
            .await
            .context("switching SQLite to WAL")?;
    }
    migrator
        .run(&pool)
        .await
        .with_context(|| format!("running {service} migrations"))?;
    Ok(pool)
}

/// SQLite does not create directories: make `data/` for `sqlite:data/x.db?mode=rwc`.
fn ensure_sqlite_parent_dir(url: &str) -> anyhow::Result<()> {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Ok(());
    };
    if url.contains("mode=memory") || rest.starts_with(":memory:") {
        return Ok(());
    }
    let rest = rest.trim_start_matches("//").trim_start_matches("file:");
    let path = rest.split('?').next().unwrap_or_default();
    if let Some(parent) = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating database directory {}", parent.display()))?;
    }
    Ok(())
}

/// The URL without its password, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Milliseconds since the Unix epoch: how every timestamp is stored (BIGINT on both engines).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/orders"),
            "postgres://app:***@db:5432/orders"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(
            redact_url("sqlite:data/x.db?mode=rwc"),
            "sqlite:data/x.db?mode=rwc"
        );
    }

    #[test]
    fn sqlite_file_urls_get_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        ensure_sqlite_parent_dir(&format!("sqlite:{}/x.db?mode=rwc", nested.display())).unwrap();
        assert!(nested.is_dir());
        let other = dir.path().join("c");
        ensure_sqlite_parent_dir(&format!("sqlite:file:{}/y.db?mode=rwc", other.display()))
            .unwrap();
        assert!(other.is_dir());
        ensure_sqlite_parent_dir("sqlite:file:mem?mode=memory&cache=shared").unwrap();
        ensure_sqlite_parent_dir("postgres://root@127.0.0.1/test").unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_database_is_created_migrated_and_in_wal_mode() {
        static MIGRATOR: Migrator = Migrator::DEFAULT;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}/data/s.db?mode=rwc", dir.path().display());
        let pool = connect(&url, 2, &MIGRATOR, "test-service").await.unwrap();
        let row: (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(row.0.to_lowercase(), "wal");
        assert!(dir.path().join("data/s.db").exists());
        // Every pooled connection, not just the first: hold two at once.
        let mut a = pool.acquire().await.unwrap();
        let mut b = pool.acquire().await.unwrap();
        for conn in [&mut a, &mut b] {
            let (mode,): (i64,) = sqlx::query_as("PRAGMA synchronous")
                .fetch_one(&mut **conn)
                .await
                .unwrap();
            assert_eq!(mode, 1, "1 is NORMAL");
        }
    }
}
