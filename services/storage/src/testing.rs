//! Throw-away PostgreSQL databases for storage tests: each test gets its own database on the
//! local server (127.0.0.1:5432, trust auth), or a visible skip when no server answers.

use std::{
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use sqlx::migrate::MigrateDatabase;

/// The local server, as the machine (and CI) provides it.
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432";

/// Set (to anything but `0` or empty) by `.ci/run`: a PostgreSQL test that finds no server fails
/// instead of skipping, so CI cannot pass with the PostgreSQL half of the suite silently gone.
pub const REQUIRE_POSTGRES_ENV: &str = "TRACELAB_REQUIRE_POSTGRES";

/// True when 127.0.0.1:5432 answers. Otherwise prints `SKIPPED <test>: …` and returns false —
/// or panics, naming the fix, when [`REQUIRE_POSTGRES_ENV`] is set.
pub fn postgres_available(test: &str) -> bool {
    let addr: SocketAddr = ([127, 0, 0, 1], 5432).into();
    if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok() {
        return true;
    }
    let required = std::env::var(REQUIRE_POSTGRES_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    assert!(
        !required,
        "{test}: PostgreSQL is not reachable on 127.0.0.1:5432 and {REQUIRE_POSTGRES_ENV} is set \
         (CI requires the PostgreSQL tests). Start it: \
         pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
    );
    // Straight to stderr: libtest captures print!/eprint! of passing tests, and a skip must
    // be visible in `make test` output.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("SKIPPED {test}: PostgreSQL is not reachable on 127.0.0.1:5432\n").as_bytes(),
    );
    false
}

/// Creates `tracelab_test_<random>` and returns its URL, or `None` when
/// [`postgres_available`] says the test is skipped.
pub async fn temp_database(test: &str) -> Option<String> {
    if !postgres_available(test) {
        return None;
    }
    sqlx::any::install_default_drivers();
    let url = format!(
        "{POSTGRES_ADMIN_URL}/tracelab_test_{}",
        uuid::Uuid::new_v4().simple()
    );
    sqlx::any::Any::create_database(&url)
        .await
        .expect("create the test database");
    Some(url)
}

/// Drops a database made by [`temp_database`], disconnecting whoever still uses it.
pub async fn drop_database(url: &str) {
    if let Err(err) = sqlx::any::Any::force_drop_database(url).await {
        eprintln!("could not drop {url}: {err}");
    }
}

/// [`drop_database`] from synchronous code (a `Drop` impl of a failed test's harness), on a
/// thread of its own so it works inside or outside a runtime.
pub fn drop_database_blocking(url: String) {
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(drop_database(&url));
        }
    })
    .join();
}
