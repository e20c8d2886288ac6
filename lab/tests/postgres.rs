//! The stack on PostgreSQL (`DATABASE_URL` given to the launcher): one schema per service in the
//! given database, the checkout spec passes through it. Skipped, with a message, when
//! 127.0.0.1:5432 is unreachable — a failure instead under `TRACELAB_REQUIRE_POSTGRES` (CI).

mod common;

const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A plain test: everything runs on the stack's own runtime, which is dropped outside any
/// async context even when the spec fails.
#[test]
fn checkout_spec_passes_on_postgresql() {
    if !storage::testing::postgres_available("checkout_spec_passes_on_postgresql") {
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
