//! new-api's `LOG_SQL_DSN`: `logs` in a database of its own, users, tokens and channels in the
//! main one (`SQL_DSN`), each holding only its own tables, as new-api migrates them.

use std::time::Duration;

use serde_json::Value;

use crate::support::Scratch;
use crate::support::bridge::bridge_config;
use crate::support::ingest::IngestStack;
use crate::support::newapi::{Backend, NewApiDb};
use crate::support::services::{InProcessWorker, ServedApi, api_config, clickhouse_args};
use logbus_runtime::Secret;

const ROWS: u64 = 5_000;

pub(super) async fn logs_in_their_own_database() {
    let stack = IngestStack::new(1).await;
    let scratch = Scratch::new("bridge_split");
    let (main_dir, logs_dir) = (scratch.path().join("main"), scratch.path().join("logs"));
    std::fs::create_dir_all(&main_dir).expect("main dir");
    std::fs::create_dir_all(&logs_dir).expect("logs dir");
    let main = NewApiDb::start(Backend::Sqlite, &main_dir, 5).await;
    main.execute("DROP TABLE logs").await;
    let mut logs = NewApiDb::start(Backend::Sqlite, &logs_dir, 5).await;
    for table in ["users", "tokens", "channels"] {
        logs.execute(&format!("DROP TABLE {table}")).await;
    }
    logs.write_logs(ROWS).await;

    let worker = InProcessWorker::start(stack.config()).await;
    let api = ServedApi::start(&api_config(clickhouse_args(&stack.db.name))).await;
    let mut config = bridge_config(&main.dsn, &stack, scratch.path().join("checkpoint.json"));
    config.log_sql_dsn = Some(Secret::new(logs.dsn.clone()));
    let stats = logbus_bridge::run(&config, false, false, std::future::pending())
        .await
        .expect("the backfill over two databases");
    assert_eq!(stats.log_rows_published, ROWS);
    let (rows, quota) = logs.log_totals().await;
    stack
        .assert_exactly_once(rows, quota, Duration::from_secs(120))
        .await;

    // The identities came from the main database: its root signs in and sees the logs.
    let root = main.access_token(1).await;
    let response = reqwest::Client::new()
        .get(format!("{}/api/log/?p=1&page_size=1", api.base))
        .header("Authorization", root)
        .header("New-Api-User", "1")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["data"]["total"], ROWS, "{body}");

    api.stop().await;
    worker.stop().await.expect("the worker stops cleanly");
    stack.finish().await;
    main.stop().await;
    logs.stop().await;
}
