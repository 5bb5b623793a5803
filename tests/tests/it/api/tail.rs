//! Acceptance tests of the live tail (`/api/log/tail`, `/api/log/self/tail`, issue 13): rows
//! published to Kafka while a tail is open arrive once each and in cursor order; a reconnect
//! with `Last-Event-ID` resumes without gaps or duplicates (with the shared reader running
//! on for another client and with it stopped); a user's tail shows their rows only, in the
//! user view; the connection limits and bad headers answer with new-api's envelope; idle
//! streams carry heartbeats; and the cursor's UUID order is the engine's.

use std::collections::{BTreeSet, HashSet};
use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use logbus_projections::events::LogEvent;
use logbus_query_api::config::Config;
use logbus_query_api::params::TailCursor;
use serde_json::Value;
use uuid::Uuid;

use crate::support::api::*;
use crate::support::eventually;

/// How long a test waits for the rows it published to reach its tail.
const DELIVERY: Duration = Duration::from_secs(60);

/// A tail that polls often and beats every second; settle time and limits as configured.
fn quick(config: &mut Config) {
    config.tail.tail_poll_ms = 50;
    config.tail.tail_heartbeat_secs = 1;
}

type Events = Pin<Box<dyn Stream<Item = Result<Event, String>> + Send>>;

/// One open tail, read as Server-Sent Events.
struct TailClient {
    events: Events,
}

/// Opens `path` as `caller`, resuming after `last_event_id`: the open tail, or the refusal's
/// status and envelope.
async fn open(
    api: &Api,
    path: &str,
    caller: Caller,
    last_event_id: Option<&str>,
) -> Result<TailClient, (u16, Value)> {
    let mut request = api
        .http
        .get(format!("{}{path}", api.base))
        .header("Authorization", caller.token)
        .header("New-Api-User", caller.id.to_string())
        .header("Accept-Language", "en");
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    if status != 200 {
        let body = response.text().await.expect("body read");
        let envelope = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: a {status} that is not JSON ({e}): {body:?}"));
        return Err((status, envelope));
    }
    let content_type = response.headers()["content-type"].to_str().unwrap_or("");
    assert_eq!(content_type, "text/event-stream", "{path}");
    assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
    let events = response
        .bytes_stream()
        .eventsource()
        .map(|event| event.map_err(|e| e.to_string()));
    Ok(TailClient {
        events: Box::pin(events),
    })
}

async fn open_ok(api: &Api, path: &str, caller: Caller, last: Option<&str>) -> TailClient {
    match open(api, path, caller, last).await {
        Ok(client) => client,
        Err((status, body)) => panic!("{path}: {status} {body}"),
    }
}

/// A row event: its cursor and its log object.
#[derive(Debug, Clone)]
struct Delivered {
    id: String,
    cursor: TailCursor,
    log: Value,
}

impl Delivered {
    fn request_id(&self) -> String {
        self.log["request_id"]
            .as_str()
            .expect("request_id")
            .to_owned()
    }
}

impl TailClient {
    /// The next row event within `wait`, or `None` when none came (or the stream ended).
    async fn next_row(&mut self, wait: Duration) -> Option<Delivered> {
        let event = tokio::time::timeout(wait, self.events.next())
            .await
            .ok()??;
        let event = event.expect("a well-formed event stream");
        assert_eq!(event.event, "message", "a row event: {event:?}");
        let cursor = TailCursor::parse(&event.id)
            .unwrap_or_else(|| panic!("the id {:?} is a tail cursor", event.id));
        let log = serde_json::from_str(&event.data).expect("data is a log object");
        Some(Delivered {
            id: event.id,
            cursor,
            log,
        })
    }

    /// Exactly `n` row events, failing after [`DELIVERY`] with what came.
    async fn rows(&mut self, n: usize) -> Vec<Delivered> {
        let deadline = tokio::time::Instant::now() + DELIVERY;
        let mut rows = Vec::with_capacity(n);
        while rows.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_row(left).await {
                Some(row) => rows.push(row),
                None => panic!("{} of {n} rows arrived within {DELIVERY:?}", rows.len()),
            }
        }
        rows
    }

    /// Asserts that no row event follows within `wait` (a duplicate would arrive in the
    /// reader's next polls, which come every 50 ms here).
    async fn assert_quiet(&mut self, wait: Duration) {
        if let Some(row) = self.next_row(wait).await {
            panic!("an unexpected row arrived: {row:?}");
        }
    }
}

/// `n` logs alternating between Alice and Bob, stamped now.
fn fresh_logs(n: usize) -> Vec<LogEvent> {
    (0..n)
        .map(|i| log(now(), if i % 2 == 0 { ALICE } else { BOB }))
        .collect()
}

/// Each row once, and cursors strictly increasing.
fn assert_once_in_order(rows: &[Delivered]) {
    for pair in rows.windows(2) {
        assert!(
            pair[0].cursor < pair[1].cursor,
            "cursor order: {} then {}",
            pair[0].id,
            pair[1].id
        );
    }
    let distinct: HashSet<String> = rows.iter().map(Delivered::request_id).collect();
    assert_eq!(distinct.len(), rows.len(), "a row arrived twice");
}

#[tokio::test]
async fn rows_published_during_a_tail_arrive_once_each_in_order() {
    let api = Api::start_with(quick).await;
    let before = vec![log(now(), ALICE), log(now(), BOB)];
    api.seed(&before, &identities()).await;

    let mut admin = open_ok(&api, "/api/log/tail", ADMIN, None).await;
    let mut alice = open_ok(&api, "/api/log/self/tail", ALICE, None).await;
    let mut claude = open_ok(&api, "/api/log/tail?model_name=claude%", ADMIN, None).await;
    let mut published = Vec::new();
    for round in 0..3 {
        let mut logs = fresh_logs(10);
        logs[round].model_name = Some("claude-3".into());
        api.seed(&logs, &[]).await;
        published.extend(logs);
    }

    let rows = admin.rows(published.len()).await;
    assert_once_in_order(&rows);
    let got: BTreeSet<String> = rows.iter().map(Delivered::request_id).collect();
    let want = request_ids(&published);
    assert_eq!(
        got, want,
        "the admin's tail is exactly what was published meanwhile"
    );
    assert!(
        rows.iter().all(|r| r.log["ip"] == "203.0.113.7"),
        "admin view"
    );
    admin.assert_quiet(Duration::from_millis(1500)).await;

    let alice_wanted: Vec<&LogEvent> = published.iter().filter(|e| e.user_id == ALICE.id).collect();
    let alice_rows = alice.rows(alice_wanted.len()).await;
    assert_once_in_order(&alice_rows);
    for row in &alice_rows {
        assert_eq!(row.log["user_id"], ALICE.id, "{row:?}");
        assert!(
            row.log.get("ip").is_none(),
            "the user view hides the ip: {row:?}"
        );
        assert_eq!(row.log["channel_name"], "", "and the channel: {row:?}");
        let other: Value = serde_json::from_str(row.log["other"].as_str().unwrap()).unwrap();
        assert!(other.get("admin_info").is_none(), "and admin_info: {other}");
    }
    alice.assert_quiet(Duration::from_millis(500)).await;

    let claude_rows = claude.rows(3).await;
    assert!(
        claude_rows
            .iter()
            .all(|r| r.log["model_name"] == "claude-3")
    );
    claude.assert_quiet(Duration::from_millis(500)).await;
    // The cursor is the row's place in the whole tail: every client sees the same ids.
    let admin_ids: HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    assert!(
        claude_rows
            .iter()
            .all(|r| admin_ids.contains(r.id.as_str()))
    );
    api.finish().await;
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_resumes_without_gaps_or_duplicates() {
    let api = Api::start_with(quick).await;
    api.seed(&[], &identities()).await;
    // First with another client keeping the shared reader running (the resume catches up to
    // it, then takes its buffered batches), then with the reader stopped in between.
    for keep_reader in [true, false] {
        let keeper = if keep_reader {
            Some(open_ok(&api, "/api/log/tail", ADMIN, None).await)
        } else {
            None
        };
        let mut first = open_ok(&api, "/api/log/tail", ADMIN, None).await;
        let early = fresh_logs(10);
        api.seed(&early, &[]).await;
        let received = first.rows(4).await;
        drop(first);
        let late = fresh_logs(10);
        api.seed(&late, &[]).await;

        let last = received.last().expect("four rows").id.clone();
        let mut resumed = open_ok(&api, "/api/log/tail", ADMIN, Some(&last)).await;
        let rest = resumed.rows(16).await;
        let mut all = received.clone();
        all.extend(rest);
        assert_once_in_order(&all);
        let got: BTreeSet<String> = all.iter().map(Delivered::request_id).collect();
        let want = request_ids(early.iter().chain(&late));
        assert_eq!(
            got, want,
            "keep_reader {keep_reader}: resumed without a gap"
        );
        resumed.assert_quiet(Duration::from_millis(1000)).await;
        drop(keeper);
    }
    api.finish().await;
}

#[tokio::test]
async fn a_users_tail_never_shows_another_users_rows() {
    let api = Api::start_with(quick).await;
    api.seed(&[], &identities()).await;
    let mut alice = open_ok(&api, "/api/log/self/tail", ALICE, None).await;
    // A user may not widen their own tail to someone else's rows.
    let mut widened = open_ok(
        &api,
        "/api/log/self/tail?user_id=3&username=bob",
        ALICE,
        None,
    )
    .await;
    let mut bob = open_ok(&api, "/api/log/self/tail", BOB, None).await;
    let logs = fresh_logs(12);
    api.seed(&logs, &[]).await;
    let alice_rows = alice.rows(6).await;
    let bob_rows = bob.rows(6).await;
    assert!(alice_rows.iter().all(|r| r.log["user_id"] == ALICE.id));
    assert!(bob_rows.iter().all(|r| r.log["user_id"] == BOB.id));
    // The query's user is ignored: the widened tail is Alice's own, exactly.
    let widened_rows = widened.rows(6).await;
    let ids = |rows: &[Delivered]| rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&widened_rows), ids(&alice_rows));
    alice.assert_quiet(Duration::from_millis(1000)).await;
    widened.assert_quiet(Duration::from_millis(200)).await;

    // Alice resuming from one of Bob's cursors still gets only her own rows.
    let more = fresh_logs(4);
    api.seed(&more, &[]).await;
    let bob_more = bob.rows(2).await;
    let mut resumed = open_ok(&api, "/api/log/self/tail", ALICE, Some(&bob_rows[0].id)).await;
    let resumed_rows = resumed.rows(4).await;
    assert!(resumed_rows.iter().all(|r| r.log["user_id"] == ALICE.id));
    assert!(bob_more.iter().all(|r| r.log["user_id"] == BOB.id));
    api.finish().await;
}

fn assert_refused(result: Result<TailClient, (u16, Value)>, status: u16, needle: &str) {
    let (got, body) = result.err().expect("refused");
    assert_eq!(got, status, "{body}");
    assert_eq!(body["success"], false, "{body}");
    let message = body["message"].as_str().expect("a message");
    assert!(message.contains(needle), "{message:?} mentions {needle:?}");
}

#[tokio::test]
async fn the_connection_limits_and_bad_requests_answer_with_the_envelope() {
    let api = Api::start_with(|config| {
        quick(config);
        config.tail.tail_max_streams = 2;
        config.tail.tail_max_streams_per_user = 1;
    })
    .await;
    api.seed(&[], &identities()).await;
    let alice = open_ok(&api, "/api/log/self/tail", ALICE, None).await;
    let second = open(&api, "/api/log/self/tail", ALICE, None).await;
    assert_refused(second, 429, "1 live tails open");
    let bob = open_ok(&api, "/api/log/self/tail", BOB, None).await;
    assert_refused(
        open(&api, "/api/log/tail", ADMIN, None).await,
        429,
        "the server has 2",
    );

    // A closed tail frees its slot once the server notices (its next heartbeat fails).
    drop(alice);
    eventually(
        "Alice's slot to be free",
        Duration::from_secs(30),
        || async { open(&api, "/api/log/self/tail", ALICE, None).await.ok() },
    )
    .await;
    drop(bob);

    let (status, body) = api.get("/api/log/tail", None).await;
    assert_eq!(
        (status, body["success"].clone()),
        (401, Value::Bool(false)),
        "{body}"
    );
    let (status, body) = api.get("/api/log/tail", Some(ALICE)).await;
    assert_eq!(
        (status, body["success"].clone()),
        (403, Value::Bool(false)),
        "{body}"
    );
    let (status, body) = api.get("/api/log/tail?type=x", Some(ADMIN)).await;
    assert_eq!(
        (status, body["success"].clone()),
        (400, Value::Bool(false)),
        "{body}"
    );
    // The header is checked before a slot is taken: no free slot is needed for this 400.
    let bad = open(&api, "/api/log/tail", ADMIN, Some("not-a-cursor")).await;
    assert_refused(bad, 400, "Last-Event-ID");
    let ancient = TailCursor::at(1_000).to_string();
    eventually("the horizon's refusal", Duration::from_secs(30), || async {
        match open(&api, "/api/log/tail", ADMIN, Some(&ancient)).await {
            // Alice's and Bob's closed tails not noticed yet.
            Err((429, _)) => None,
            other => {
                assert_refused(other, 400, "horizon");
                Some(())
            }
        }
    })
    .await;
    api.finish().await;
}

#[tokio::test]
async fn an_idle_tail_carries_heartbeats() {
    let api = Api::start_with(quick).await;
    api.seed(&[], &identities()).await;
    let response = api
        .http
        .get(format!("{}/api/log/tail", api.base))
        .header("Authorization", ADMIN.token)
        .header("New-Api-User", ADMIN.id.to_string())
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-accel-buffering"], "no");
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    for _ in 0..3 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("a heartbeat within 10 s")
            .expect("the stream goes on")
            .expect("a chunk");
        seen.push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
    }
    assert!(seen.matches(": keep-alive\n").count() >= 3, "{seen:?}");
    assert_eq!(seen.replace(": keep-alive\n\n", ""), "", "heartbeats only");
    api.finish().await;
}

#[tokio::test]
async fn tail_cursors_order_uuids_as_the_engine_does() {
    let api = Api::start().await;
    let mut ids: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
    ids.extend([
        Uuid::nil(),
        Uuid::max(),
        Uuid::from_u64_pair(1, 0),
        Uuid::from_u64_pair(0, 1),
        Uuid::from_u64_pair(u64::MAX, 0),
        Uuid::from_u64_pair(0, u64::MAX),
    ]);
    let list = ids
        .iter()
        .map(|id| format!("toUUID('{id}')"))
        .collect::<Vec<_>>()
        .join(",");
    let engine: Vec<String> = api
        .db
        .client
        .query(&format!(
            "SELECT toString(id) FROM (SELECT arrayJoin([{list}]) AS id) ORDER BY id"
        ))
        .fetch_all()
        .await
        .expect("sorted by the engine");
    let mut ours = ids.clone();
    ours.sort_by_key(|id| TailCursor {
        ingested_ms: 0,
        event_id: *id,
    });
    let ours: Vec<String> = ours.iter().map(Uuid::to_string).collect();
    assert_eq!(ours, engine);
    api.finish().await;
}
