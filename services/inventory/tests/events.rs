//! Event handling without Kafka, on SQLite: an event processed while its e-mail step failed gets
//! its e-mail on redelivery, and nothing else is redone. (tests/kafka.rs covers the same through
//! the consumer, tests/postgres.rs on PostgreSQL.)

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_email_step_is_redone_and_only_it() {
    let app = spawn_sqlite().await;
    a_failed_email_step_is_redone_on_redelivery(&app).await;
    app.stop().await;
}
