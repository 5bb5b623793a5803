//! The ClickHouse side of the foundation: the official crate works through the dev front with
//! LZ4 on, migrations are idempotent, the rollup equals a GROUP BY over the raw rows, and the
//! front answers bad queries the way ClickHouse does.

use crate::support::{TestDatabase, clickhouse_client, clickhouse_url};
use clickhouse::Row;
use logbus_projections::rows::LogRow;
use logbus_projections::{MIGRATIONS, MigrateOptions, migrate};
use serde::Deserialize;
use uuid::Uuid;

fn sample_row(i: u32) -> LogRow {
    LogRow {
        event_id: Uuid::new_v4(),
        created_at: 1_700_000_000 + i * 7,
        log_type: [2, 2, 2, 5, 1][i as usize % 5],
        user_id: i64::from(i % 13) + 1,
        username: format!("user{}", i % 13 + 1),
        token_id: i64::from(i % 29),
        token_name: format!("token-{}", i % 29),
        model_name: ["gpt-4o", "claude-3-5-sonnet", "deepseek-chat"][i as usize % 3].into(),
        quota: i64::from(i % 1000) * 3,
        prompt_tokens: i64::from(i % 500),
        completion_tokens: i64::from(i % 700),
        use_time: (i % 30) as i32,
        is_stream: i.is_multiple_of(2),
        channel_id: i64::from(i % 5),
        channel_name: format!("渠道{}", i % 5),
        group: ["default", "vip"][i as usize % 2].into(),
        ip: "127.0.0.1".into(),
        request_id: format!("req-{i}"),
        upstream_request_id: String::new(),
        content: format!("模型倍率 {i}, completion ratio"),
        other: r#"{"model_ratio":15.0}"#.into(),
        ingest_batch: 1,
    }
}

async fn insert_rows(db: &TestDatabase, rows: &[LogRow]) {
    let mut insert = db
        .client
        .insert::<LogRow>("logs")
        .await
        .expect("insert starts");
    for row in rows {
        insert.write(row).await.expect("row written");
    }
    insert.end().await.expect("insert acknowledged");
}

#[tokio::test]
async fn crate_round_trips_rows_with_lz4_through_the_front() {
    let db = TestDatabase::migrated().await;
    let rows: Vec<LogRow> = (0..20_000).map(sample_row).collect();
    insert_rows(&db, &rows).await;

    let mut read_back = db
        .client
        .query("SELECT ?fields FROM logs ORDER BY created_at, event_id")
        .fetch_all::<LogRow>()
        .await
        .expect("rows read back");
    let mut expected = rows.clone();
    expected.sort_by_key(|r| (r.created_at, r.event_id));
    read_back.sort_by_key(|r| (r.created_at, r.event_id));
    assert_eq!(read_back.len(), expected.len());
    assert_eq!(read_back, expected, "every column survives the round trip");

    // Bound parameters, both client-side (`?`) and server-side (`{name:Type}`).
    let by_user = db
        .client
        .query("SELECT count() FROM logs WHERE user_id = ? AND model_name = {model:String}")
        .bind(3_i64)
        .param("model", "gpt-4o")
        .fetch_one::<u64>()
        .await
        .expect("parameterised count");
    let expected_by_user = rows
        .iter()
        .filter(|r| r.user_id == 3 && r.model_name == "gpt-4o")
        .count() as u64;
    assert_eq!(by_user, expected_by_user);
    db.drop_database().await;
}

#[tokio::test]
async fn crate_works_without_compression_too() {
    let db = TestDatabase::migrated().await;
    let client = db
        .client
        .clone()
        .with_compression(clickhouse::Compression::None);
    let mut insert = client
        .insert::<LogRow>("logs")
        .await
        .expect("insert starts");
    for i in 0..100 {
        insert.write(&sample_row(i)).await.expect("row written");
    }
    insert.end().await.expect("insert acknowledged");
    let count = client
        .query("SELECT count() FROM logs")
        .fetch_one::<u64>()
        .await
        .expect("count");
    assert_eq!(count, 100);
    db.drop_database().await;
}

#[tokio::test]
async fn migrations_apply_twice_without_change() {
    let db = TestDatabase::migrated().await;
    let schema = || async {
        db.client
            .query(
                "SELECT name, engine, create_table_query FROM system.tables
                 WHERE database = currentDatabase() ORDER BY name",
            )
            .fetch_all::<SchemaTable>()
            .await
            .expect("schema listing")
    };
    let before = schema().await;
    assert!(
        before.iter().any(|t| t.name == "logs")
            && before.iter().any(|t| t.name == "logs_minute_mv"),
        "the first run created the schema: {before:?}"
    );
    let root = clickhouse_client().await;
    let report = migrate(&root, &db.name, MigrateOptions::default())
        .await
        .expect("second run");
    assert!(report.applied.is_empty(), "nothing re-applied: {report:?}");
    assert_eq!(
        report.already_applied,
        MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>()
    );
    assert_eq!(before, schema().await, "the second run changed nothing");
    let recorded = db.count("SELECT count() FROM schema_migrations").await;
    assert_eq!(
        recorded,
        2 * MIGRATIONS.len() as u64,
        "one started and one applied row each"
    );

    // Every column carries a comment an analyst can read in ClickHouse itself.
    let uncommented = db
        .count(
            "SELECT count() FROM system.columns
             WHERE database = currentDatabase() AND comment = ''
               AND table NOT LIKE '.inner%'
               AND table NOT IN (SELECT name FROM system.tables
                                 WHERE database = currentDatabase() AND engine = 'MaterializedView')",
        )
        .await;
    assert_eq!(uncommented, 0, "every column has a comment");

    // Migration 3 set the codecs without touching types or comments.
    let codecs = db
        .client
        .query(
            "SELECT concat(table, '.', name, ' ', type, ' ', compression_codec) FROM system.columns
             WHERE database = currentDatabase()
               AND (table, name) IN (('logs', 'upstream_request_id'), ('logs', 'quota'),
                                     ('logs_minute', 'quota'))
             ORDER BY table, name",
        )
        .fetch_all::<String>()
        .await
        .expect("codecs");
    assert_eq!(
        codecs,
        [
            "logs.quota Int64 CODEC(T64, ZSTD(1))",
            "logs.upstream_request_id String CODEC(ZSTD(1))",
            "logs_minute.quota Int64 CODEC(T64, LZ4)",
        ]
    );

    // Migration 6 set the smaller compression blocks of `logs`.
    let create = db
        .client
        .query(
            "SELECT create_table_query FROM system.tables
             WHERE database = currentDatabase() AND name = 'logs'",
        )
        .fetch_one::<String>()
        .await
        .expect("create statement of logs");
    for setting in [
        "min_compress_block_size = 16384",
        "max_compress_block_size = 262144",
    ] {
        assert!(create.contains(setting), "{setting} in {create}");
    }
    db.drop_database().await;
}

#[tokio::test]
async fn half_applied_migration_is_detected_and_can_be_resumed() {
    let db = TestDatabase::migrated().await;
    let last = MIGRATIONS.last().expect("at least one migration");
    // Simulate a run that died after recording `started`: remove the `applied` row.
    db.client
        .query("DELETE FROM schema_migrations WHERE version = ? AND state = 'applied'")
        .bind(last.version)
        .execute()
        .await
        .expect("lightweight delete");
    let root = clickhouse_client().await;
    let error = migrate(&root, &db.name, MigrateOptions::default())
        .await
        .expect_err("a half-applied migration stops the run");
    assert!(
        matches!(error, logbus_projections::Error::HalfApplied { version, .. } if version == last.version),
        "{error}"
    );
    let resumed = migrate(
        &root,
        &db.name,
        MigrateOptions {
            resume_half_applied: true,
            ..Default::default()
        },
    )
    .await
    .expect("resume");
    assert_eq!(resumed.applied, vec![last.version]);
    db.drop_database().await;
}

#[tokio::test]
async fn a_single_server_database_is_not_migrated_as_a_clusters() {
    let db = TestDatabase::migrated().await;
    let root = clickhouse_client().await;
    let options = MigrateOptions {
        cluster: Some(logbus_projections::Cluster::new("logs_cluster").expect("valid")),
        ..Default::default()
    };
    let error = migrate(&root, &db.name, options)
        .await
        .expect_err("the recorded migrations are a single server's");
    assert!(
        matches!(&error, logbus_projections::Error::TopologyMismatch { cluster: Some(c), .. } if c == "logs_cluster"),
        "{error}"
    );
    let recorded = db.count("SELECT count() FROM schema_migrations").await;
    assert_eq!(
        recorded,
        2 * MIGRATIONS.len() as u64,
        "nothing was recorded"
    );
    db.drop_database().await;
}

#[tokio::test]
async fn minute_rollup_equals_group_by_over_raw_rows() {
    let db = TestDatabase::migrated().await;
    let rows: Vec<LogRow> = (0..30_000).map(sample_row).collect();
    // Several inserts, so the rollup holds unmerged parts of the same keys.
    for chunk in rows.chunks(7_000) {
        insert_rows(&db, chunk).await;
    }
    let group_by =
        "minute, type, user_id, username, token_id, token_name, model_name, channel_id, `group`";
    let from_rollup = db
        .client
        .query(&format!(
            "SELECT {group_by}, sum(requests) AS requests_sum, sum(quota) AS quota_sum,
                    sum(prompt_tokens) AS prompt_sum, sum(completion_tokens) AS completion_sum
             FROM logs_minute GROUP BY {group_by} ORDER BY {group_by}"
        ))
        .fetch_all::<RollupLine>()
        .await
        .expect("rollup");
    let from_raw = db
        .client
        .query(&format!(
            "SELECT toStartOfMinute(created_at) AS minute, type, user_id, username, token_id, token_name,
                    model_name, channel_id, `group`, count() AS requests_sum, sum(quota) AS quota_sum,
                    sum(prompt_tokens) AS prompt_sum, sum(completion_tokens) AS completion_sum
             FROM logs GROUP BY {group_by} ORDER BY {group_by}"
        ))
        .fetch_all::<RollupLine>()
        .await
        .expect("raw group by");
    assert!(!from_raw.is_empty());
    assert_eq!(from_rollup, from_raw);
    let total_quota: i64 = rows.iter().map(|r| r.quota).sum();
    assert_eq!(
        from_rollup.iter().map(|l| l.quota_sum).sum::<i64>(),
        total_quota
    );
    db.drop_database().await;
}

/// The retention delete rebuilds a cut minute with `schema::minute_rollup_select`; the view
/// that fills the rollup was created by a frozen migration. The engine stores a view's SELECT
/// normalised, so a view made from the shared text must store exactly the migration's.
#[tokio::test]
async fn the_shared_rollup_select_is_the_views_select() {
    let db = TestDatabase::migrated().await;
    let check = "rollup_select_check";
    db.client
        .query(&format!(
            "CREATE VIEW {check} AS {}",
            logbus_projections::schema::minute_rollup_select("")
        ))
        .execute()
        .await
        .expect("view from the shared SELECT");
    let stored = |name: &'static str| {
        db.client
            .query(
                "SELECT as_select FROM system.tables WHERE database = currentDatabase() AND name = ?",
            )
            .bind(name)
            .fetch_one::<String>()
    };
    let view = stored(logbus_projections::tables::LOGS_MINUTE_MV)
        .await
        .expect("the migration's view");
    assert!(view.contains("sum(completion_tokens)"), "{view}");
    assert_eq!(stored(check).await.expect("the check view"), view);
    db.drop_database().await;
}

/// Migration 7 corrected what the batch-id columns say about the hash.
#[tokio::test]
async fn batch_id_columns_describe_the_hash_that_ingest_computes() {
    let db = TestDatabase::migrated().await;
    let comments = db
        .client
        .query(
            "SELECT comment FROM system.columns WHERE database = currentDatabase()
             AND ((table = 'logs' AND name = 'ingest_batch')
               OR (table = 'ingest_batches' AND name = 'batch_id'))
             ORDER BY table",
        )
        .fetch_all::<String>()
        .await
        .expect("column comments");
    assert_eq!(comments.len(), 2, "{comments:?}");
    assert!(
        comments[0].contains("insert_deduplication_token"),
        "{comments:?}"
    );
    assert!(
        comments[1].contains("first and last payloads"),
        "{comments:?}"
    );
    db.drop_database().await;
}

#[tokio::test]
async fn front_answers_a_bad_query_like_clickhouse() {
    let http = reqwest::Client::new();
    let response = http
        .post(clickhouse_url())
        .body("SELEC 1")
        .send()
        .await
        .expect("front reachable");
    assert_eq!(response.status(), 400);
    assert_eq!(
        response
            .headers()
            .get("X-ClickHouse-Exception-Code")
            .and_then(|v| v.to_str().ok()),
        Some("62")
    );
    let body = response.text().await.expect("body");
    assert!(body.starts_with("Code: 62. DB::Exception:"), "{body}");

    let missing = http
        .get(clickhouse_url())
        .query(&[("query", "SELECT * FROM no_such_database_here.t")])
        .send()
        .await
        .expect("front reachable");
    assert!(missing.status().is_client_error(), "{}", missing.status());
    let code = missing
        .headers()
        .get("X-ClickHouse-Exception-Code")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = missing.text().await.expect("body");
    assert_eq!(code.as_deref(), Some("81"), "{body}");
    assert!(body.contains("DB::Exception"), "{body}");

    // The crate surfaces the same error text.
    let error = clickhouse_client()
        .await
        .query("SELEC 1")
        .execute()
        .await
        .expect_err("syntax error");
    assert!(error.to_string().contains("Code: 62"), "{error}");
}

#[tokio::test]
async fn plain_http_get_works_like_curl() {
    let body = reqwest::get(format!("{}/?query=SELECT+1", clickhouse_url()))
        .await
        .expect("front reachable")
        .text()
        .await
        .expect("body");
    assert_eq!(body, "1\n");
    let ping = reqwest::get(format!("{}/ping", clickhouse_url()))
        .await
        .expect("front reachable")
        .text()
        .await
        .expect("body");
    assert_eq!(ping, "Ok.\n");
}

#[derive(Debug, PartialEq, Eq, Row, Deserialize)]
struct SchemaTable {
    name: String,
    engine: String,
    create_table_query: String,
}

#[derive(Debug, PartialEq, Eq, Row, Deserialize)]
struct RollupLine {
    minute: u32,
    #[serde(rename = "type")]
    log_type: u8,
    user_id: i64,
    username: String,
    token_id: i64,
    token_name: String,
    model_name: String,
    channel_id: i64,
    group: String,
    requests_sum: u64,
    quota_sum: i64,
    prompt_sum: i64,
    completion_sum: i64,
}
