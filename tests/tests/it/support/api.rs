//! Shared harness of the `api_*` acceptance tests: a fresh database, the query API served on
//! port 0, and [`Api::seed`], the one function that puts events into the store.
//!
//! `seed` publishes the events to per-test `gateway.logs`/`gateway.identity` topics and waits
//! until the ingest worker (run in-process) made them visible. Set
//! `LOGBUS_API_TEST_DIRECT_SEED=1` to insert the rows directly instead (no broker needed).

use std::time::Duration;

use crate::support::ingest::worker_config;
use crate::support::services::{InProcessWorker, ServedApi, api_config, clickhouse_args};
use crate::support::{TestDatabase, eventually};
use logbus_projections::events::{EventSource, LogEvent};
use logbus_projections::identity::{IdentityEvent, Secret, TokenIdentity, UserIdentity};
use logbus_projections::rows::{LogRow, TokenRow, UserRow};
use reqwest::header::HeaderMap;
use serde_json::Value;
use uuid::Uuid;

/// Someone calling the API with an access token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller {
    pub id: i64,
    pub token: &'static str,
}

impl Caller {
    const fn new(id: i64, token: &'static str) -> Self {
        Self { id, token }
    }
}

pub(crate) const ADMIN: Caller = Caller::new(1, "admin-access-token");
pub(crate) const ALICE: Caller = Caller::new(2, "alice-access-token");
pub(crate) const BOB: Caller = Caller::new(3, "bob-access-token");
/// A user whose status is 2 (disabled).
pub(crate) const BANNED: Caller = Caller::new(4, "banned-access-token");

/// Alice's API token (id 21), enabled.
pub(crate) const ALICE_KEY: &str = "sk-alicekey0000000000000000000001";
pub(crate) const ALICE_TOKEN_ID: i64 = 21;
/// Bob's API token (id 31), disabled.
pub(crate) const DISABLED_KEY: &str = "sk-bobkey00000000000000000000000002";
pub(crate) const BOB_TOKEN_ID: i64 = 31;

pub(crate) fn user(
    caller: Caller,
    name: &str,
    role: i32,
    status: i32,
    version: u64,
) -> IdentityEvent {
    IdentityEvent::User(UserIdentity {
        id: caller.id,
        username: name.into(),
        role,
        status,
        group: "default".into(),
        access_token_sha256: None,
        access_token: Some(Secret::new(caller.token)),
        version,
    })
}

pub(crate) fn token(id: i64, user_id: i64, name: &str, key: &str, status: i32) -> IdentityEvent {
    IdentityEvent::Token(TokenIdentity {
        id,
        user_id,
        name: name.into(),
        key_sha256: None,
        key: Some(Secret::new(key)),
        status,
        version: 1,
    })
}

/// Admin, Alice, Bob, a banned user, and the two API tokens.
pub(crate) fn identities() -> Vec<IdentityEvent> {
    vec![
        user(ADMIN, "root", 100, 1, 1),
        user(ALICE, "alice", 1, 1, 1),
        user(BOB, "bob", 1, 1, 1),
        user(BANNED, "mallory", 1, 2, 1),
        token(ALICE_TOKEN_ID, ALICE.id, "alice-token", ALICE_KEY, 1),
        token(BOB_TOKEN_ID, BOB.id, "bob-token", DISABLED_KEY, 2),
    ]
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// The request ids of `logs` (every log of [`log`] has one).
pub(crate) fn request_ids<'a>(
    logs: impl IntoIterator<Item = &'a LogEvent>,
) -> std::collections::BTreeSet<String> {
    logs.into_iter()
        .map(|log| log.request_id.clone().expect("a log with a request id"))
        .collect()
}

/// A consumption log of `user` at `created_at` with a fresh event id.
pub(crate) fn log(created_at: i64, user: Caller) -> LogEvent {
    let (username, token_id, token_name) = match user.id {
        2 => ("alice", ALICE_TOKEN_ID, "alice-token"),
        3 => ("bob", BOB_TOKEN_ID, "bob-token"),
        1 => ("root", 11, "root-token"),
        _ => ("mallory", 41, "mallory-token"),
    };
    LogEvent {
        event_id: Some(Uuid::new_v4()),
        created_at,
        log_type: 2,
        user_id: user.id,
        username: Some(username.into()),
        token_id: Some(token_id),
        token_name: Some(token_name.into()),
        model_name: Some("gpt-4o".into()),
        quota: Some(100),
        prompt_tokens: Some(10),
        completion_tokens: Some(20),
        use_time: Some(1),
        is_stream: Some(false),
        channel_id: Some(1),
        channel_name: Some("openai-main".into()),
        group: Some("default".into()),
        ip: Some("203.0.113.7".into()),
        request_id: Some(format!("req-{}", Uuid::new_v4().simple())),
        upstream_request_id: None,
        content: Some("ok".into()),
        other: Some(serde_json::json!({"model_ratio": 2.5, "admin_info": {"x": 1}})),
    }
}

/// The worker feeding the API, over topics of the test's own.
struct Ingest {
    logs_topic: String,
    identity_topic: String,
    dlq_topic: String,
    producer: rdkafka::producer::FutureProducer,
    worker: InProcessWorker,
}

/// The API served on port 0 over a fresh database, plus the worker feeding it.
pub(crate) struct Api {
    pub db: TestDatabase,
    pub base: String,
    pub http: reqwest::Client,
    server: Option<ServedApi>,
    ingest: Option<Ingest>,
    seeded_logs: std::sync::atomic::AtomicU64,
}

pub(crate) fn direct_seed() -> bool {
    std::env::var("LOGBUS_API_TEST_DIRECT_SEED").is_ok_and(|v| v == "1")
}

impl Api {
    pub(crate) async fn start() -> Api {
        Self::start_with_ttl_ms(300).await
    }

    pub(crate) async fn start_with_ttl_ms(ttl_ms: u64) -> Api {
        Self::start_with(|config| config.identity_cache_ttl_ms = ttl_ms).await
    }

    /// The API over a fresh database, its config (identity TTL 300 ms) adjusted by `adjust`.
    pub(crate) async fn start_with(
        adjust: impl FnOnce(&mut logbus_query_api::config::Config),
    ) -> Api {
        crate::support::init_tracing();
        let db = TestDatabase::migrated().await;
        let ingest = if direct_seed() {
            None
        } else {
            Some(start_ingest(&db.name).await)
        };
        let mut config = api_config(clickhouse_args(&db.name));
        config.identity_cache_ttl_ms = 300;
        config.query_timeout_secs = 20;
        adjust(&mut config);
        let server = ServedApi::start(&config).await;
        Api {
            db,
            base: server.base.clone(),
            http: reqwest::Client::new(),
            server: Some(server),
            ingest,
            seeded_logs: Default::default(),
        }
    }

    /// Makes `logs` and `identities` visible to the API: through Kafka and the ingest worker,
    /// or (`LOGBUS_API_TEST_DIRECT_SEED=1`) by inserting rows.
    pub(crate) async fn seed(&self, logs: &[LogEvent], identities: &[IdentityEvent]) {
        match &self.ingest {
            Some(ingest) => {
                let log_payloads: Vec<(String, String)> = logs
                    .iter()
                    .map(|e| {
                        (
                            e.user_id.to_string(),
                            serde_json::to_string(e).expect("event serializes"),
                        )
                    })
                    .collect();
                let identity_payloads: Vec<(String, String)> = identities
                    .iter()
                    .map(|e| {
                        let key = match e {
                            IdentityEvent::User(u) => format!("user:{}", u.id),
                            IdentityEvent::Token(t) => format!("token:{}", t.id),
                        };
                        (key, serde_json::to_string(e).expect("identity serializes"))
                    })
                    .collect();
                crate::support::publish(
                    &ingest.producer,
                    &ingest.identity_topic,
                    &identity_payloads,
                )
                .await;
                crate::support::publish(&ingest.producer, &ingest.logs_topic, &log_payloads).await;
            }
            None => insert_rows(&self.db, logs, identities).await,
        }
        let expected_logs = self
            .seeded_logs
            .fetch_add(logs.len() as u64, std::sync::atomic::Ordering::SeqCst)
            + logs.len() as u64;
        let db = &self.db;
        eventually(
            "seeded logs to be visible",
            Duration::from_secs(60),
            || async move {
                let n = db.count("SELECT count() FROM logs").await;
                (n >= expected_logs).then_some(())
            },
        )
        .await;
        for identity in identities {
            let (sql, id, version) = match identity {
                IdentityEvent::User(u) => ("users", u.id, u.version),
                IdentityEvent::Token(t) => ("tokens", t.id, t.version),
            };
            let query =
                format!("SELECT count() FROM {sql} WHERE id = {id} AND version >= {version}");
            eventually(
                "seeded identity to be visible",
                Duration::from_secs(60),
                || {
                    let query = query.clone();
                    async move { (db.count(&query).await > 0).then_some(()) }
                },
            )
            .await;
        }
    }

    /// Records that rows were removed (by DELETE), so that later seeds wait for the right count.
    pub(crate) fn forget_logs(&self, n: u64) {
        self.seeded_logs
            .fetch_sub(n, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, HeaderMap, Value) {
        let mut request = self.http.request(method, format!("{}{}", self.base, path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.expect("body read");
        let json = serde_json::from_str(&body).unwrap_or_else(|e| {
            panic!("{path}: body is not JSON ({e}), status {status}: {body:?}")
        });
        (status, headers, json)
    }

    /// GET as `caller` (or anonymously); returns the status and the JSON body.
    pub(crate) async fn get(&self, path: &str, caller: Option<Caller>) -> (u16, Value) {
        let id;
        let mut headers = Vec::new();
        if let Some(caller) = caller {
            id = caller.id.to_string();
            headers.push(("Authorization", caller.token));
            headers.push(("New-Api-User", id.as_str()));
        }
        let (status, _, body) = self.call(reqwest::Method::GET, path, &headers).await;
        (status, body)
    }

    /// GET as `caller`, asserting success; returns `data`.
    pub(crate) async fn data(&self, path: &str, caller: Caller) -> Value {
        let (status, body) = self.get(path, Some(caller)).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["success"], true, "{path}: {body}");
        assert_eq!(body["message"], "", "{path}: {body}");
        body["data"].clone()
    }

    pub(crate) async fn finish(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
        if let Some(ingest) = self.ingest.take() {
            ingest
                .worker
                .stop()
                .await
                .expect("the worker stops cleanly");
            crate::support::delete_topics(&[
                &ingest.logs_topic,
                &ingest.identity_topic,
                &ingest.dlq_topic,
            ])
            .await;
        }
        self.db.drop_database().await;
    }
}

async fn start_ingest(database: &str) -> Ingest {
    let logs_topic = crate::support::create_topic("api_logs", 1).await;
    let identity_topic = crate::support::create_topic("api_identity", 1).await;
    let dlq_topic = crate::support::create_topic("api_dlq", 1).await;
    let group = crate::support::unique_name("api_group");
    let config = worker_config(database, [&logs_topic, &identity_topic, &dlq_topic], &group);
    Ingest {
        logs_topic,
        identity_topic,
        dlq_topic,
        producer: crate::support::producer(),
        worker: InProcessWorker::start(config).await,
    }
}

pub(crate) async fn insert_rows(
    db: &TestDatabase,
    logs: &[LogEvent],
    identities: &[IdentityEvent],
) {
    if !identities.is_empty() {
        let mut users = db.client.insert::<UserRow>("users").await.expect("insert");
        let mut tokens = db
            .client
            .insert::<TokenRow>("tokens")
            .await
            .expect("insert");
        for identity in identities {
            match identity.clone() {
                IdentityEvent::User(u) => users
                    .write(&u.into_row().expect("valid user"))
                    .await
                    .expect("write user"),
                IdentityEvent::Token(t) => tokens
                    .write(&t.into_row().expect("valid token"))
                    .await
                    .expect("write token"),
            }
        }
        users.end().await.expect("users inserted");
        tokens.end().await.expect("tokens inserted");
    }
    if !logs.is_empty() {
        let mut insert = db.client.insert::<LogRow>("logs").await.expect("insert");
        for (index, event) in logs.iter().enumerate() {
            let source = EventSource {
                topic: "direct",
                partition: 0,
                offset: 0,
                index,
            };
            let row = event.clone().into_row(source).expect("valid event");
            insert.write(&row).await.expect("write log");
        }
        insert.end().await.expect("logs inserted");
    }
}
