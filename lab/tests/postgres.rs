//! The stack on PostgreSQL (`DATABASE_URL` given to the launcher): one schema per service in the
//! given database, the checkout spec passes through it. Skipped, with a message, when
//! 127.0.0.1:5432 is unreachable.

mod common;

use std::time::Duration;

const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn postgres_reachable() -> bool {
    std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5432".parse().expect("address"),
        Duration::from_secs(2),
    )
    .is_ok()
}

/// A plain test: everything runs on the stack's own runtime, which is dropped outside any
/// async context even when the spec fails.
#[test]
fn checkout_spec_passes_on_postgresql() {
    if !postgres_reachable() {
        // Straight to stderr: libtest captures eprintln! of passing tests, and a skip must be
        // visible in `make test` output.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED checkout_spec_passes_on_postgresql: PostgreSQL is not reachable on 127.0.0.1:5432\n",
        );
        return;
    }
    let shared = common::start_shared("postgres", |o| o.database_url = Some(URL.into()))
        .unwrap_or_else(|e| panic!("{e}"));
    shared.rt.block_on(async {
        common::run_spec(&shared.stack, "checkout").await;
    });
    let common::Shared { stack, rt } = shared;
    let killed = rt.block_on(stack.shutdown());
    assert!(killed.is_empty(), "had to SIGKILL {killed:?}");
}
