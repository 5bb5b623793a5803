//! 1% malformed events of every kind: every valid event lands, every malformed one is in the
//! dead-letter topic with its original bytes and a reason.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::ingest::{IngestStack, dlq_reader, events, fast_producer, publish_events};
use crate::support::services::InProcessWorker;
use futures::StreamExt;
use rdkafka::Message;
use rdkafka::message::Headers;

const VALID: usize = 5_000;
const PER_KIND: usize = VALID / 100;
const PLAIN_TOKEN: &str = "plain-token-d41d8cd98f00b204e980";

/// (payload, expected reason class, expected dead-letter payload, expected source_index)
type Malformed = (Vec<u8>, &'static str, Vec<u8>, Option<usize>);

struct DeadLetter {
    payload: Vec<u8>,
    headers: HashMap<String, String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_events_go_to_the_dead_letter_topic_and_valid_ones_land() {
    let stack = IngestStack::new(3).await;
    let producer = fast_producer();
    let valid = events(11, VALID);
    let expected_quota: i64 = valid.iter().map(|e| e.quota).sum();

    let mut bad: Vec<Malformed> = Vec::new();
    let mut array_rows = 0usize;
    for i in 0..PER_KIND {
        let not_json = format!("not json {i} {{").into_bytes();
        bad.push((not_json.clone(), "unreadable", not_json, None));
        let wrong_type =
            format!(r#"{{"created_at":"yesterday","type":2,"user_id":{i},"n":{i}}}"#).into_bytes();
        bad.push((wrong_type.clone(), "invalid_event", wrong_type, None));
        let missing = format!(r#"{{"created_at":1700000000,"type":2,"n":{i}}}"#).into_bytes();
        bad.push((missing.clone(), "invalid_event", missing, None));
        let out_of_range =
            format!(r#"{{"created_at":1700000000,"type":9,"user_id":{i}}}"#).into_bytes();
        bad.push((out_of_range.clone(), "invalid_event", out_of_range, None));
        let oversized = format!(
            r#"{{"created_at":1700000000,"type":2,"user_id":{i},"content":"{}"}}"#,
            "x".repeat(300 * 1024)
        )
        .into_bytes();
        bad.push((oversized.clone(), "oversized", oversized, None));
        let element = format!(
            r#"{{"created_at":1700000000,"type":2,"user_id":-{}}}"#,
            i + 1
        );
        let array = format!(
            r#"[{{"event_id":"{}","created_at":1700000000,"type":2,"user_id":{i},"quota":5}},{element},{{"event_id":"{}","created_at":1700000001,"type":2,"user_id":{i},"quota":7}}]"#,
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4()
        )
        .into_bytes();
        array_rows += 2;
        bad.push((array, "invalid_event", element.into_bytes(), Some(1)));
        // A day ahead of its message's time: outside the created_at window.
        let future = format!(
            r#"{{"created_at":{},"type":2,"user_id":{i}}}"#,
            crate::support::api::now() + 86_400
        )
        .into_bytes();
        bad.push((future.clone(), "out_of_window", future, None));
    }
    // More elements than --max-events-per-message: one dead letter for the whole message.
    let many = format!("[{}]", vec!["1"; 20_000].join(",")).into_bytes();
    bad.push((many.clone(), "oversized", many, None));
    let array_quota = (PER_KIND as i64) * 12;

    // Interleave: valid events with the malformed ones spread among them.
    publish_events(&producer, &stack.logs_topic, &valid[..VALID / 2]).await;
    let bad_payloads: Vec<(String, Vec<u8>)> = bad
        .iter()
        .enumerate()
        .map(|(i, (payload, ..))| (i.to_string(), payload.clone()))
        .collect();
    crate::support::publish(&producer, &stack.logs_topic, &bad_payloads).await;
    publish_events(&producer, &stack.logs_topic, &valid[VALID / 2..]).await;
    // Invalid identity events are dead-lettered too.
    let bad_identity: Vec<(String, Vec<u8>)> = vec![
        ("a".into(), br#"{"kind":"group","id":1}"#.to_vec()),
        ("b".into(), br#"{"kind":"user","id":1}"#.to_vec()),
        ("c".into(), b"nope".to_vec()),
        // A plain credential must not reach the dead-letter topic, whatever the failure.
        (
            "d".into(),
            format!(r#"{{"kind":"user","id":1,"access_token":"{PLAIN_TOKEN}"}}"#).into_bytes(),
        ),
        (
            "e".into(),
            format!(r#"{{"kind":"token","key":"{PLAIN_TOKEN}","#).into_bytes(),
        ),
    ];
    crate::support::publish(&producer, &stack.identity_topic, &bad_identity).await;

    let worker = InProcessWorker::start(stack.config()).await;
    let expected_rows = (VALID + array_rows) as u64;
    let totals = stack
        .wait_for_rows(expected_rows, Duration::from_secs(120))
        .await;
    assert_eq!(totals.rows, expected_rows);
    assert_eq!(totals.quota, expected_quota + array_quota);
    assert_eq!(totals.rollup_requests, expected_rows);
    assert_eq!(totals.rollup_quota, expected_quota + array_quota);

    // Read the dead-letter topic.
    let expected_letters = bad.len() + bad_identity.len();
    let consumer = dlq_reader(&stack);
    let mut letters = Vec::new();
    let mut stream = consumer.stream();
    while letters.len() < expected_letters {
        let message = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {expected_letters} dead letters arrived",
                    letters.len()
                )
            })
            .expect("stream")
            .expect("message");
        let mut headers = HashMap::new();
        if let Some(h) = message.headers() {
            for header in h.iter() {
                headers.insert(
                    header.key.to_owned(),
                    String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                );
            }
        }
        letters.push(DeadLetter {
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    // Nothing more than expected (give the worker a moment to produce strays, if any).
    let extra = tokio::time::timeout(Duration::from_secs(2), stream.next()).await;
    assert!(extra.is_err(), "more dead letters than malformed events");
    drop(stream);

    for letter in &letters {
        for header in [
            "reason",
            "source_topic",
            "source_partition",
            "source_offset",
        ] {
            assert!(
                letter.headers.get(header).is_some_and(|v| !v.is_empty()),
                "dead letter without {header}: {:?}",
                letter.headers
            );
        }
    }
    for (_, class, dead_payload, index) in &bad {
        let letter = letters
            .iter()
            .find(|l| &l.payload == dead_payload)
            .unwrap_or_else(|| {
                panic!(
                    "no dead letter for {}",
                    String::from_utf8_lossy(&dead_payload[..dead_payload.len().min(80)])
                )
            });
        assert_eq!(letter.headers["source_topic"], stack.logs_topic);
        assert_eq!(letter.headers["reason_class"], *class);
        assert_eq!(
            letter.headers.get("source_index").cloned(),
            index.map(|i| i.to_string())
        );
    }
    for letter in &letters {
        let shown = format!(
            "{:?} {}",
            letter.headers,
            String::from_utf8_lossy(&letter.payload)
        );
        assert!(
            !shown.contains(PLAIN_TOKEN),
            "plain credential dead-lettered: {shown}"
        );
    }
    let identity_letters = letters
        .iter()
        .filter(|l| l.headers["source_topic"] == stack.identity_topic)
        .count();
    assert_eq!(identity_letters, bad_identity.len());

    worker.stop().await.expect("clean stop");
    stack.finish().await;
}

/// Rows that parse but that ClickHouse rejects (here: a CHECK constraint added for the test)
/// are isolated by splitting the batch and dead-lettered; the rest of the batch lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_clickhouse_rejects_are_isolated_and_dead_lettered() {
    let stack = IngestStack::new(1).await;
    stack
        .db
        .client
        .query("ALTER TABLE logs ADD CONSTRAINT test_quota_cap CHECK quota < 1000000000000")
        .execute()
        .await
        .expect("add constraint");
    let producer = fast_producer();
    let mut valid = events(12, 2_000);
    let mut rejected = Vec::new();
    for i in [17usize, 900, 1_501] {
        let mut event: serde_json::Value = serde_json::from_slice(&valid[i].payload).expect("json");
        event["quota"] = serde_json::json!(5_000_000_000_000i64);
        valid[i].payload = serde_json::to_vec(&event).expect("serialize");
        valid[i].quota = 0;
        rejected.push(valid[i].payload.clone());
    }
    let expected_quota: i64 = valid.iter().map(|e| e.quota).sum();
    publish_events(&producer, &stack.logs_topic, &valid).await;

    let worker = InProcessWorker::start(stack.config()).await;
    let expected_rows = (valid.len() - rejected.len()) as u64;
    let totals = stack
        .wait_for_rows(expected_rows, Duration::from_secs(120))
        .await;
    assert_eq!(totals.rows, expected_rows);
    assert_eq!(totals.quota, expected_quota);
    assert_eq!(totals.rollup_requests, expected_rows);

    let consumer = dlq_reader(&stack);
    let mut stream = consumer.stream();
    let mut seen = Vec::new();
    while seen.len() < rejected.len() {
        let message = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("dead letters arrive")
            .expect("stream")
            .expect("message");
        let class = message
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "reason_class"))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned());
        assert_eq!(class.as_deref(), Some("clickhouse_rejected"));
        seen.push(message.payload().unwrap_or_default().to_vec());
    }
    for payload in &rejected {
        assert!(seen.contains(payload), "rejected row dead-lettered");
    }
    drop(stream);
    worker.stop().await.expect("clean stop");
    stack.finish().await;
}
