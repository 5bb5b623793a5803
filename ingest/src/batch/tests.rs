//! Unit tests of the pure batch rules (no broker, no ClickHouse).

use super::*;

pub(crate) const EVENT: &str = r#"{"created_at":1700000000,"type":2,"user_id":7}"#;

pub(crate) fn limits() -> Limits {
    Limits {
        max_rows: 3,
        max_bytes: 1_000,
        max_event_bytes: 200,
        max_events_per_message: 10,
        created_at: CreatedAtWindow::default(),
        flush_interval: Duration::from_millis(200),
    }
}

/// The time of the test messages: read now (events of 2023 are in the window).
pub(crate) fn now_secs() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as u32
}

pub(crate) fn message(offset: i64, payload: &str) -> SourceMessage {
    SourceMessage {
        offset,
        key: Some(b"7".to_vec()),
        time: now_secs(),
        payload: payload.as_bytes().to_vec(),
    }
}

fn logs() -> TopicPartition {
    TopicPartition::new("gateway.logs", 3)
}

fn add(batch: &mut Batch, offset: i64, payload: &str) -> Added {
    let now = Instant::now();
    batch.add(
        &logs(),
        Kind::Logs,
        message(offset, payload),
        None,
        &limits(),
        now,
    )
}

fn batch(first: i64, last: i64, payloads: &[&[u8]]) -> Batch {
    Batch {
        first_offset: first,
        last_offset: last,
        messages: payloads
            .iter()
            .enumerate()
            .map(|(i, p)| SourceMessage {
                offset: first + i as i64,
                key: None,
                time: 0,
                payload: p.to_vec(),
            })
            .collect(),
        ..Batch::default()
    }
}

#[test]
fn batch_id_is_stable_and_depends_on_range_and_content() {
    let key = TopicPartition::new("gateway.logs", 3);
    let a = batch_id(&key, &batch(10, 11, &[b"a", b"b"]));
    assert_eq!(a, batch_id(&key, &batch(10, 11, &[b"a", b"b"])));
    assert_ne!(a, batch_id(&key, &batch(10, 12, &[b"a", b"b"])));
    assert_ne!(a, batch_id(&key, &batch(10, 11, &[b"a", b"c"])));
    assert_ne!(
        a,
        batch_id(
            &TopicPartition::new("gateway.logs", 4),
            &batch(10, 11, &[b"a", b"b"])
        )
    );
    // Pinned: the id must never change between releases (replays rely on it).
    assert_eq!(a, batch_id(&key, &batch(10, 11, &[b"a", b"b"])));
    assert_eq!(a, 0xfd8c_4b0f_6a6e_0a80);
}

#[test]
fn a_batch_is_full_at_its_row_or_byte_limit() {
    let mut rows = Batch::default();
    for offset in 0..2 {
        add(&mut rows, offset, EVENT);
        assert!(!rows.is_full(&limits()));
    }
    add(&mut rows, 2, EVENT);
    assert!(rows.is_full(&limits()), "3 rows");
    assert_eq!((rows.first_offset, rows.last_offset), (0, 2));
    assert_eq!(rows.next_offset(), 3);

    let mut limits = limits();
    limits.max_event_bytes = 1_000;
    let mut bytes = Batch::default();
    let padded = format!("{EVENT}{}", " ".repeat(600));
    for offset in 0..2 {
        assert!(!bytes.is_full(&limits));
        let now = Instant::now();
        bytes.add(
            &logs(),
            Kind::Logs,
            message(offset, &padded),
            None,
            &limits,
            now,
        );
    }
    assert!(bytes.is_full(&limits), "1,292 bytes");
    assert_eq!(bytes.rows.len(), 2);
}

#[test]
fn a_planned_batch_is_full_only_at_its_recorded_end() {
    let intent = Intent {
        consumer_group: "g".into(),
        topic: "gateway.logs".into(),
        partition: 3,
        first_offset: 0,
        last_offset: 4,
        batch_id: 1,
        rows: 5,
    };
    let mut batch = Batch::default();
    let now = Instant::now();
    for offset in 0..5 {
        assert!(!batch.is_full(&limits()) || offset == 0);
        let planned = (offset == 0).then(|| intent.clone());
        batch.add(
            &logs(),
            Kind::Logs,
            message(offset, EVENT),
            planned,
            &limits(),
            now,
        );
    }
    assert_eq!(batch.planned.as_ref(), Some(&intent));
    assert!(batch.is_full(&limits()));
    assert_eq!(batch.rows.len(), 5, "over the row limit of 3");
}

#[test]
fn due_by_age_after_the_interval_or_the_planned_patience() {
    let started = Instant::now();
    let mut batch = Batch::default();
    assert!(!batch.is_due(started + Duration::from_secs(60), &limits()));
    batch.add(
        &logs(),
        Kind::Logs,
        message(0, EVENT),
        None,
        &limits(),
        started,
    );
    assert!(!batch.is_due(started + Duration::from_millis(199), &limits()));
    assert!(batch.is_due(started + Duration::from_millis(200), &limits()));
    batch.planned = Some(Intent {
        consumer_group: "g".into(),
        topic: "gateway.logs".into(),
        partition: 3,
        first_offset: 0,
        last_offset: 9,
        batch_id: 1,
        rows: 10,
    });
    assert!(!batch.is_due(started + Duration::from_secs(29), &limits()));
    assert!(batch.is_due(started + PLANNED_BATCH_PATIENCE, &limits()));
}

#[test]
fn rejections_become_dead_letters_with_their_class() {
    let mut batch = Batch::default();
    let unreadable = add(&mut batch, 5, "not json");
    assert_eq!(unreadable.events, 0);
    let [letter] = &unreadable.dead[..] else {
        panic!("one letter")
    };
    assert_eq!(letter.header("reason_class"), Some("unreadable"));
    assert_eq!(letter.header("source_offset"), Some("5"));
    assert_eq!(letter.header("source_index"), None);
    assert_eq!(letter.payload, b"not json");
    assert_eq!(letter.key.as_deref(), Some(&b"7"[..]));

    let array = format!(r#"[{EVENT},{{"type":2}},{{"big":"{}"}}]"#, "x".repeat(300));
    let added = add(&mut batch, 6, &array);
    assert_eq!(added.events, 3);
    assert_eq!(added.dead.len(), 2);
    assert_eq!(added.dead[0].header("reason_class"), Some("invalid_event"));
    assert_eq!(added.dead[0].header("source_index"), Some("1"));
    assert_eq!(added.dead[0].payload, br#"{"type":2}"#);
    assert_eq!(added.dead[1].header("reason_class"), Some("oversized"));
    assert_eq!(added.dead[1].header("source_index"), Some("2"));

    let single = add(&mut batch, 7, r#"{"type":2}"#);
    assert_eq!(single.dead[0].header("reason_class"), Some("invalid_event"));
    assert_eq!(single.dead[0].header("source_index"), None);

    assert_eq!(batch.messages.len(), 3, "every message is kept");
    assert_eq!(batch.rows.len(), 1);
    assert_eq!(
        batch.sources[0],
        RowSource {
            message: 1,
            index: Some(0),
            span: 1..1 + EVENT.len(),
        }
    );
}

#[test]
fn identity_rejections_are_classified() {
    let mut batch = Batch::default();
    let source = TopicPartition::new("gateway.identity", 0);
    let added = batch.add(
        &source,
        Kind::Identity,
        message(0, r#"{"kind":"nope"}"#),
        None,
        &limits(),
        Instant::now(),
    );
    assert_eq!(
        added.dead[0].header("reason_class"),
        Some("invalid_identity")
    );
    assert_eq!(
        added.dead[0].header("source_topic"),
        Some("gateway.identity")
    );
}

#[test]
fn a_refused_row_is_dead_lettered_from_its_slice_of_the_message() {
    let mut batch = Batch::default();
    add(&mut batch, 0, EVENT);
    add(&mut batch, 1, &format!(" [ {EVENT} ,{EVENT}]"));
    let single = batch.rejected_row(&logs(), &batch.sources[0], "Code: 53");
    assert_eq!(single.payload, EVENT.as_bytes());
    assert_eq!(single.header("source_index"), None);
    assert_eq!(single.header("reason_class"), Some("clickhouse_rejected"));
    assert_eq!(
        single.header("reason"),
        Some("rejected by ClickHouse: Code: 53")
    );
    let element = batch.rejected_row(&logs(), &batch.sources[2], "Code: 53");
    assert_eq!(element.payload, EVENT.as_bytes());
    assert_eq!(element.header("source_index"), Some("1"));
    assert_eq!(element.header("source_offset"), Some("1"));

    let all = batch.rejected_messages(&logs(), "Code: 53");
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|l| l.header("source_index").is_none()));
    assert_eq!(all[1].payload, batch.messages[1].payload);
}

const PLAIN_TOKEN: &str = "plain-access-token-0123456789";
const PLAIN_KEY: &str = "sk-plainkey0123456789abcdef";

fn identity_letters(payload: &str) -> Vec<DeadLetter> {
    let mut batch = Batch::default();
    let source = TopicPartition::new("gateway.identity", 0);
    let added = batch.add(
        &source,
        Kind::Identity,
        message(0, payload),
        None,
        &limits(),
        Instant::now(),
    );
    added.dead
}

fn carries_a_secret(letter: &DeadLetter) -> bool {
    let payload = String::from_utf8_lossy(&letter.payload);
    let headers = letter.headers.iter().map(|(_, v)| v.as_str());
    std::iter::once(payload.as_ref())
        .chain(headers)
        .any(|text| text.contains(PLAIN_TOKEN) || text.contains("plainkey0123456789abcdef"))
}

#[test]
fn identity_dead_letters_never_carry_a_plain_credential() {
    // Invalid (no role), oversized, a wrong-typed credential echoed by the parser's reason,
    // a credential inside an array, and not JSON at all.
    let invalid = format!(
        r#"{{"kind":"user","id":1,"status":1,"version":1,"access_token":"{PLAIN_TOKEN}"}}"#
    );
    let oversized = format!(
        r#"{{"kind":"token","id":1,"user_id":1,"status":1,"version":1,"key":"{PLAIN_KEY}","name":"{}"}}"#,
        "x".repeat(300)
    );
    let echoed = r#"{"kind":"token","id":1,"user_id":1,"status":1,"version":1,"key":{"v":"sk-plainkey0123456789abcdef"}}"#;
    let nested = format!(r#"[{{"kind":"user","access_token":"{PLAIN_TOKEN}"}}]"#);
    let broken = format!(r#"{{"kind":"user","access_token":"{PLAIN_TOKEN}","#);
    for payload in [&invalid, &oversized, &echoed.to_owned(), &nested, &broken] {
        let letters = identity_letters(payload);
        let [letter] = &letters[..] else {
            panic!("one letter for {payload}")
        };
        assert!(!carries_a_secret(letter), "{letter:?}");
    }
    // The hash replaces the plain value, so the letter can be republished once fixed.
    let [letter] = &identity_letters(&invalid)[..] else {
        panic!("one letter")
    };
    let json: serde_json::Value = serde_json::from_slice(&letter.payload).expect("JSON");
    assert_eq!(
        json["access_token_sha256"],
        logbus_projections::identity::hash_access_token(PLAIN_TOKEN)
    );
    // Not JSON: withheld (the source offset still points at the original).
    let [letter] = &identity_letters(&broken)[..] else {
        panic!("one letter")
    };
    assert!(letter.payload.is_empty());
    assert!(letter.header("payload_withheld").is_some());
}

#[test]
fn identity_messages_clickhouse_refused_are_dead_lettered_without_credentials() {
    let mut batch = Batch::default();
    let source = TopicPartition::new("gateway.identity", 0);
    let valid = format!(
        r#"{{"kind":"token","id":1,"user_id":1,"status":1,"version":1,"key":"{PLAIN_KEY}"}}"#
    );
    let added = batch.add(
        &source,
        Kind::Identity,
        message(0, &valid),
        None,
        &limits(),
        Instant::now(),
    );
    assert!(added.dead.is_empty());
    let letters = batch.rejected_messages(&source, "Code: 53");
    assert_eq!(letters.len(), 1);
    assert!(!carries_a_secret(&letters[0]), "{:?}", letters[0]);
    let json: serde_json::Value = serde_json::from_slice(&letters[0].payload).expect("JSON");
    assert_eq!(
        json["key_sha256"],
        logbus_projections::identity::hash_token_key(PLAIN_KEY)
    );
}

#[test]
fn a_message_of_many_bad_elements_is_dead_lettered_once() {
    let mut batch = Batch::default();
    let elements = format!("[{}]", vec!["1"; 100_000].join(","));
    let mut limits = limits();
    limits.max_bytes = 1 << 20;
    let added = batch.add(
        &logs(),
        Kind::Logs,
        message(0, &elements),
        None,
        &limits,
        Instant::now(),
    );
    assert_eq!(added.dead.len(), 1, "one letter for the whole message");
    assert_eq!(added.dead[0].header("reason_class"), Some("oversized"));
    assert_eq!(added.dead[0].payload, elements.as_bytes());
}

#[test]
fn dead_letters_count_in_the_batch_limits() {
    // 3 bad elements (letters held until the batch is written) fill a batch of 3 rows.
    let mut batch = Batch::default();
    add(&mut batch, 0, "[1,2,3]");
    assert!(batch.is_full(&limits()));
}

#[test]
fn created_at_far_ahead_of_the_message_is_dead_lettered() {
    let mut batch = Batch::default();
    let future = format!(
        r#"{{"created_at":{},"type":2,"user_id":7}}"#,
        now_secs() + 86_400
    );
    let added = add(&mut batch, 0, &future);
    assert_eq!(added.dead.len(), 1);
    assert_eq!(added.dead[0].header("reason_class"), Some("out_of_window"));
    assert!(batch.rows.is_empty());
    // Judged against the message's time, not the clock: a replay judges it alike.
    let mut replayed = message(0, &future);
    replayed.time = now_secs() + 86_400;
    let added = batch.add(
        &logs(),
        Kind::Logs,
        replayed,
        None,
        &limits(),
        Instant::now(),
    );
    assert!(added.dead.is_empty());
    assert_eq!(batch.rows.len(), 1);
}
