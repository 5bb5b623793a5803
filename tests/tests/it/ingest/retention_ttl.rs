//! Automatic retention: the worker gives `logs` and `logs_minute` the configured TTLs at
//! start, idempotently, and rows older than them leave with their whole day partitions once
//! ClickHouse materialises the TTL (forced here; a server does it in its background merges).

use std::time::Duration;

use logbus_projections::ttl::{self, Retention};

use crate::support::api::now;
use crate::support::ingest::IngestStack;
use crate::support::services::InProcessWorker;
use crate::support::{TestDatabase, eventually};

async fn engine_full(db: &TestDatabase, table: &str) -> String {
    db.client
        .query(
            "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = ?",
        )
        .bind(table)
        .fetch_one::<String>()
        .await
        .expect("engine_full")
}

/// One consume log `days_ago` days back, with `quota`.
async fn insert_log(db: &TestDatabase, days_ago: i64, quota: i64) {
    db.client
        .query(
            "INSERT INTO logs (event_id, created_at, type, user_id, quota)
             VALUES (generateUUIDv4(), toDateTime(?, 'UTC'), 2, 1, ?)",
        )
        .bind(now() - days_ago * 86_400)
        .bind(quota)
        .execute()
        .await
        .expect("log inserted");
}

async fn run(db: &TestDatabase, statement: &str) {
    db.client
        .query(statement)
        .execute()
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// Materialises both tables' TTLs and merges, as background merges eventually would.
async fn expire(db: &TestDatabase) {
    for table in ["logs", "logs_minute"] {
        run(
            db,
            &format!("ALTER TABLE {table} MATERIALIZE TTL SETTINGS mutations_sync = 2"),
        )
        .await;
        run(db, &format!("OPTIMIZE TABLE {table} FINAL")).await;
    }
}

async fn quotas(db: &TestDatabase) -> (i64, i64) {
    let raw = db.count("SELECT toUInt64(sum(quota)) FROM logs").await as i64;
    let rollup = db
        .count("SELECT toUInt64(sum(quota)) FROM logs_minute")
        .await as i64;
    (raw, rollup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_past_the_retention_leave_and_the_rest_stay() {
    let db = TestDatabase::migrated().await;
    // Quotas tell the rows apart: 1 today, 10 at 100 days, 100 at 500 days.
    insert_log(&db, 0, 1).await;
    insert_log(&db, 100, 10).await;
    insert_log(&db, 500, 100).await;
    assert_eq!(quotas(&db).await, (111, 111));

    let retention = Retention {
        raw_days: 90,
        rollup_days: 400,
    };
    let applied = ttl::apply(&db.client, &retention, None)
        .await
        .expect("applied");
    assert_eq!(
        applied,
        [
            "ALTER TABLE logs MODIFY TTL created_at + INTERVAL 90 DAY",
            "ALTER TABLE logs_minute MODIFY TTL minute + INTERVAL 400 DAY",
        ]
    );
    let again = ttl::apply(&db.client, &retention, None)
        .await
        .expect("applied");
    assert!(
        again.is_empty(),
        "the same retention changes nothing: {again:?}"
    );
    assert!(
        engine_full(&db, "logs")
            .await
            .contains("ttl_only_drop_parts = 1")
    );

    expire(&db).await;
    assert_eq!(
        quotas(&db).await,
        (1, 11),
        "raw logs keep 90 days, the rollup 400"
    );

    // Longer, then for ever: one statement each, and nothing leaves any more.
    let applied = ttl::apply(
        &db.client,
        &Retention {
            raw_days: 0,
            rollup_days: 0,
        },
        None,
    )
    .await
    .expect("removed");
    assert_eq!(
        applied,
        [
            "ALTER TABLE logs REMOVE TTL",
            "ALTER TABLE logs_minute REMOVE TTL",
        ]
    );
    insert_log(&db, 1000, 1000).await;
    for table in ["logs", "logs_minute"] {
        run(&db, &format!("OPTIMIZE TABLE {table} FINAL")).await;
    }
    assert_eq!(quotas(&db).await, (1001, 1011));
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_applies_the_configured_retention_at_start() {
    let stack = IngestStack::new(1).await;
    let mut config = stack.config();
    config.retention_raw_days = 30;
    config.retention_rollup_days = 0;
    let worker = InProcessWorker::start(config).await;
    eventually(
        "the worker to give logs its TTL",
        Duration::from_secs(60),
        || async {
            engine_full(&stack.db, "logs")
                .await
                .contains("TTL created_at + toIntervalDay(30)")
                .then_some(())
        },
    )
    .await;
    assert!(
        !engine_full(&stack.db, "logs_minute")
            .await
            .contains(" TTL "),
        "0 keeps the rollup for ever"
    );
    worker.stop().await.expect("clean stop");
    stack.finish().await;
}
