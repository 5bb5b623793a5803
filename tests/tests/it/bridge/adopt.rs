//! The adoption scenario, the same for each database engine.

use std::time::Duration;

use futures::StreamExt;
use logbus_bridge::sample;
use nix::sys::signal::Signal;
use rdkafka::Message;
use rdkafka::message::Headers;
use serde_json::Value;

use crate::support::bridge::{BridgeProcess, bridge_config};
use crate::support::ingest::{IngestStack, dlq_reader};
use crate::support::newapi::{Backend, NewApiDb};
use crate::support::services::{InProcessWorker, ServedApi, api_config, clickhouse_args};
use crate::support::{Scratch, eventually, heavy_test};

const BACKFILL_ROWS: u64 = 100_000;
const USERS: usize = 20;
/// The API's identity cache TTL in this test.
const IDENTITY_CACHE_TTL_MS: u64 = 300;

pub(super) async fn adopt(backend: Backend) {
    let _heavy = heavy_test().await;
    let stack = IngestStack::new(2).await;
    let scratch = Scratch::new("bridge");
    let mut source = NewApiDb::start(backend, scratch.path(), USERS).await;
    source.write_logs(BACKFILL_ROWS).await;
    let worker = InProcessWorker::start(stack.config()).await;
    let mut api = api_config(clickhouse_args(&stack.db.name));
    api.identity_cache_ttl_ms = IDENTITY_CACHE_TTL_MS;
    let api = ServedApi::start(&api).await;
    let log = scratch.path().join("bridge.log");
    let mut config = bridge_config(&source.dsn, &stack, scratch.path().join("checkpoint.json"));

    // 1. A backfill SIGKILLed once its checkpoint passed 20k rows (throttled so that it is
    //    mid-way then), then a second backfill that resumes and ends by itself.
    config.max_rows_per_sec = 20_000;
    let mut bridge = BridgeProcess::spawn("backfill", &config, &log);
    let checkpoint_config = config.clone();
    bridge
        .wait_until(
            "the checkpoint to pass id 20000",
            Duration::from_secs(120),
            move || {
                let config = checkpoint_config.clone();
                async move {
                    let checkpoint = logbus_bridge::stored_checkpoint(&config).await;
                    checkpoint.is_ok_and(|c| c.logs.high >= 20_000)
                }
            },
        )
        .await;
    bridge.signal(Signal::SIGKILL);
    assert!(!bridge.wait_exit(Duration::from_secs(10)).await.success());
    let killed_at = logbus_bridge::stored_checkpoint(&config)
        .await
        .expect("checkpoint")
        .logs
        .high;
    assert!(
        (20_000..BACKFILL_ROWS as i64).contains(&killed_at),
        "killed mid-backfill: checkpoint at {killed_at}"
    );
    config.max_rows_per_sec = 0;
    let summary = BridgeProcess::spawn("backfill", &config, &log)
        .assert_succeeds(Duration::from_secs(180))
        .await;
    assert!(
        summary.contains("users: "),
        "a summary at the end:\n{summary}"
    );
    let (rows, quota) = source.log_totals().await;
    assert_eq!(rows, BACKFILL_ROWS);
    stack
        .assert_exactly_once(rows, quota, Duration::from_secs(180))
        .await;

    // The same rows published again from scratch (a lost checkpoint, a second bridge): the
    // event ids are the same, so ingest stores nothing twice. Engine-independent: SQLite only.
    if backend == Backend::Sqlite {
        let mut again = config.clone();
        again.checkpoint = scratch.path().join("second-checkpoint.json");
        let stats = logbus_bridge::run(&again, false, false, std::future::pending())
            .await
            .expect("a second backfill");
        assert_eq!(stats.log_rows_published, BACKFILL_ROWS);
        stack.wait_consumed(Duration::from_secs(120)).await;
        let (rows, quota) = source.log_totals().await;
        stack
            .assert_exactly_once(rows, quota, Duration::from_secs(10))
            .await;
    }

    // 2. `run` resumes and follows: new rows, and (where transactions interleave) a row whose
    //    transaction commits after a higher id was published.
    let mut bridge = BridgeProcess::spawn("run", &config, &log);
    source.write_logs(2_000).await;
    if backend != Backend::Sqlite {
        let late = source.next_logs(1).remove(0);
        let open = source.insert_uncommitted(&late).await;
        let after = source.next_logs(1);
        source
            .execute(&sample::insert_logs(source.dialect, &after))
            .await;
        wait_for_request(&stack, &after[0].request_id).await;
        open.commit().await;
        wait_for_request(&stack, &late.request_id).await;
    }
    // A row the event contract refuses (type 0, new-api's LogTypeUnknown) is published anyway
    // and dead-lettered with its reason; everything else lands.
    let mut refused = source.next_logs(1).remove(0);
    refused.log_type = 0;
    refused.request_id = "refused-type-0".into();
    source
        .execute(&sample::insert_logs(
            source.dialect,
            std::slice::from_ref(&refused),
        ))
        .await;
    let letter = first_dead_letter(&stack).await;
    assert!(letter.0.contains("refused-type-0"), "{letter:?}");
    assert!(letter.1.contains("type 0"), "{letter:?}");
    let (rows, quota) = source.log_totals().await;
    stack
        .assert_exactly_once(rows - 1, quota - refused.quota, Duration::from_secs(120))
        .await;
    bridge.assert_running();

    // 3. new-api's own credentials, read from its tables, work against logbus.
    let http = reqwest::Client::new();
    let user = &source.users[1];
    let user_token = source.access_token(user.id).await;
    let user_rows = source
        .scalar(&format!(
            "SELECT CAST(COUNT(*) AS {}) FROM logs WHERE user_id = {}",
            bigint(&source),
            user.id
        ))
        .await;
    let (status, body) = get(
        &http,
        &api.base,
        "/api/log/self?p=1&page_size=5",
        &user_token,
        Some(user.id),
    )
    .await;
    assert_eq!(
        (status, &body["success"]),
        (200, &Value::Bool(true)),
        "{body}"
    );
    assert_eq!(body["data"]["total"], user_rows, "{body}");
    let root_token = source.access_token(1).await;
    let (status, body) = get(
        &http,
        &api.base,
        "/api/log/?p=1&page_size=1",
        &root_token,
        Some(1),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["total"], rows - 1, "{body}");
    let token = &source.tokens[TOKEN_OF_USER];
    assert_eq!(token.user_id, user.id);
    let key = format!("sk-{}", source.token_key(token.id).await);
    let (status, body) = get(
        &http,
        &api.base,
        "/api/log/token",
        &format!("Bearer {key}"),
        None,
    )
    .await;
    assert_eq!(
        (status, &body["success"]),
        (200, &Value::Bool(true)),
        "{body}"
    );
    let items = body["data"].as_array().expect("a list of logs");
    assert!(!items.is_empty(), "{body}");
    assert!(
        items.iter().all(|item| item["token_id"] == token.id),
        "{body}"
    );

    // 4. A ban and a token soft-deleted in new-api's tables lock them out of logbus within
    //    the bound: identity poll + ingest flush + identity cache TTL (docs/adopting.md).
    source
        .execute(&format!(
            "UPDATE users SET status = 2 WHERE id = {}",
            user.id
        ))
        .await;
    source.soft_delete_token(token.id).await;
    let bound =
        Duration::from_millis(config.identity_poll_interval_ms + 200 + IDENTITY_CACHE_TTL_MS);
    eventually(
        &format!("the banned user refused (bound {bound:?}, plus CI slack)"),
        Duration::from_secs(30),
        || async {
            let (status, _) = get(
                &http,
                &api.base,
                "/api/log/self",
                &user_token,
                Some(user.id),
            )
            .await;
            (status == 403).then_some(())
        },
    )
    .await;
    eventually(
        &format!("the deleted token refused (bound {bound:?}, plus CI slack)"),
        Duration::from_secs(30),
        || async {
            let (status, _) = get(&http, &api.base, "/api/log/token", &key, None).await;
            (status == 401).then_some(())
        },
    )
    .await;

    let summary = bridge.stop().await;
    assert!(summary.contains("logs: "), "{summary}");
    api.stop().await;
    worker.stop().await.expect("the worker stops cleanly");
    stack.finish().await;
    source.stop().await;
}

/// The sample token (index in `NewApiDb::tokens`) of user 2: its first.
const TOKEN_OF_USER: usize = crate::support::newapi::TOKENS_PER_USER;

fn bigint(source: &NewApiDb) -> &'static str {
    match source.backend {
        Backend::MariaDb => "SIGNED",
        Backend::Postgres => "BIGINT",
        Backend::Sqlite => "INTEGER",
    }
}

async fn wait_for_request(stack: &IngestStack, request_id: &str) {
    let sql = format!("SELECT count() FROM logs WHERE request_id = '{request_id}'");
    eventually(
        &format!("the row of request {request_id} in ClickHouse"),
        Duration::from_secs(60),
        || async { (stack.db.count(&sql).await == 1).then_some(()) },
    )
    .await;
}

/// The payload and `reason` header of the first dead letter of `stack`.
async fn first_dead_letter(stack: &IngestStack) -> (String, String) {
    let consumer = dlq_reader(stack);
    let message = tokio::time::timeout(Duration::from_secs(60), consumer.stream().next())
        .await
        .expect("a dead letter within 60 s")
        .expect("stream")
        .expect("message");
    let reason = message
        .headers()
        .and_then(|h| h.iter().find(|h| h.key == "reason"))
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    let payload = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
    (payload, reason)
}

/// `GET base+path` with `Authorization: authorization` (and `New-Api-User`).
async fn get(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    authorization: &str,
    user: Option<i64>,
) -> (u16, Value) {
    let mut request = http
        .get(format!("{base}{path}"))
        .header("Authorization", authorization);
    if let Some(id) = user {
        request = request.header("New-Api-User", id.to_string());
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}
