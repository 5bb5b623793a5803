//! `logbus-bridge` beside an unmodified new-api, on each of new-api's databases (SQLite, and
//! PostgreSQL and MariaDB servers the test starts): backfill, SIGKILL and resume, follow with
//! a late-committing row, and new-api's own credentials working, then refused, against the API.

mod adopt;
mod split_logs;

use crate::support::newapi::Backend;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_adopts_a_sqlite_new_api() {
    adopt::adopt(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_adopts_a_postgres_new_api() {
    adopt::adopt(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_adopts_a_mariadb_new_api() {
    adopt::adopt(Backend::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_reads_logs_from_a_separate_log_database() {
    split_logs::logs_in_their_own_database().await;
}
