//! Database access: opening the sqlx `Any` pool (SQLite or PostgreSQL from one URL) and running the
//! service's migrations, which are written to run unchanged on both engines.

use std::time::Duration;

use anyhow::Context as _;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Opens the pool for `url` and brings the schema up to date.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    ensure_sqlite_parent_dir(url)?;
    // A shared-cache in-memory SQLite database lives as long as one connection does, and its
    // table-level locks fail concurrent writers immediately (no busy wait): one long-lived connection.
    let options = if url.contains("mode=memory") {
        AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        AnyPoolOptions::new().max_connections(max_connections.max(1))
    };
    let pool = options
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
        .with_context(|| format!("connecting to {}", redact_url(url)))?;
    if url.starts_with("sqlite:") && !url.contains("mode=memory") {
        // Readers no longer wait for writers (the relay polls while checkouts write); persistent per file.
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await
            .context("switching SQLite to WAL")?;
    }
    MIGRATOR
        .run(&pool)
        .await
        .context("running order-service migrations")?;
    Ok(pool)
}

/// `sqlite:data/x.db?mode=rwc` needs `data/` to exist; create it like a first run would expect.
fn ensure_sqlite_parent_dir(url: &str) -> anyhow::Result<()> {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Ok(());
    };
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path.starts_with("file:") || path == ":memory:" {
        return Ok(());
    }
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating database directory {}", parent.display()))?;
    }
    Ok(())
}

/// The URL without its password, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Milliseconds since the Unix epoch (timestamps are stored as BIGINT on both engines).
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
        assert_eq!(redact_url("sqlite:data/o.db"), "sqlite:data/o.db");
    }
}
