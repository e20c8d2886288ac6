//! Database connection: one sqlx `Any` pool over SQLite or PostgreSQL, chosen by the URL, migrated
//! with the one set of migrations in `migrations/` at start-up.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connects and runs the migrations.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    ensure_sqlite_parent_dir(url)?;
    let mut options = AnyPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(Duration::from_secs(10));
    if url.contains("mode=memory") {
        // A shared-cache in-memory SQLite database lives as long as one connection to it does.
        options = options
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    }
    let pool = options
        .connect(url)
        .await
        .with_context(|| format!("connecting to {}", redact_url(url)))?;
    if url.starts_with("sqlite:") && !url.contains("mode=memory") {
        // Readers no longer block the writer (and vice versa) under load; the mode is stored in the
        // database file, so setting it once per start is enough.
        sqlx::query("PRAGMA journal_mode = WAL")
            .fetch_optional(&pool)
            .await
            .context("switching SQLite to WAL")?;
    }
    MIGRATOR
        .run(&pool)
        .await
        .context("running payment-service migrations")?;
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

/// Milliseconds since the Unix epoch (how every timestamp is stored).
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
            redact_url("postgres://postgres:secret@127.0.0.1:5432/test"),
            "postgres://postgres:***@127.0.0.1:5432/test"
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
}
