//! The parser against the contract, and the contract documents against the parser.

use super::*;

const LIMIT: usize = 64 * 1024;

fn limits() -> MessageLimits {
    MessageLimits::new(LIMIT, 100)
}

fn parse(payload: &str) -> Vec<Result<LogRow, Rejection>> {
    parse_log_message(payload.as_bytes(), "gateway.logs", 3, 42, &limits())
        .expect("message readable")
        .into_iter()
        .map(|e| e.row)
        .collect()
}

#[test]
fn minimal_event_gets_a_stable_derived_id() {
    let rows = parse(r#"{"created_at":1700000000,"type":2,"user_id":7}"#);
    let row = rows[0].clone().expect("valid");
    assert_eq!(row.user_id, 7);
    assert_eq!(row.log_type, 2);
    let again = parse(r#"{"created_at":1700000000,"type":2,"user_id":7}"#);
    assert_eq!(again[0].clone().expect("valid").event_id, row.event_id);
    let other_offset = parse_log_message(
        br#"{"created_at":1700000000,"type":2,"user_id":7}"#,
        "gateway.logs",
        3,
        43,
        &limits(),
    )
    .expect("readable");
    assert_ne!(
        other_offset[0].row.as_ref().expect("valid").event_id,
        row.event_id
    );
}

#[test]
fn array_with_one_bad_element_rejects_only_that_element() {
    let rows = parse(
        r#"[{"created_at":1700000000,"type":2,"user_id":1},
            {"created_at":"yesterday","type":2,"user_id":1},
            {"created_at":1700000000,"type":9,"user_id":1},
            {"type":2,"user_id":1},
            {"created_at":1700000000,"type":2,"user_id":1,"other":{"a":1},"extra":true}]"#,
    );
    assert!(rows[0].is_ok());
    assert!(
        rows[1]
            .as_ref()
            .unwrap_err()
            .reason
            .contains("invalid type")
    );
    assert!(
        rows[2]
            .as_ref()
            .unwrap_err()
            .reason
            .contains("out of range")
    );
    assert!(
        rows[3]
            .as_ref()
            .unwrap_err()
            .reason
            .contains("missing field `created_at`")
    );
    assert_eq!(rows[4].as_ref().expect("valid").other, r#"{"a":1}"#);
    let ids: std::collections::HashSet<_> = [&rows[0], &rows[4]]
        .iter()
        .map(|r| r.as_ref().expect("valid").event_id)
        .collect();
    assert_eq!(ids.len(), 2, "positions in one message get distinct ids");
}

#[test]
fn other_must_hold_a_json_object() {
    assert!(parse(r#"{"created_at":1,"type":2,"user_id":1,"other":"{\"x\":2}"}"#)[0].is_ok());
    assert!(parse(r#"{"created_at":1,"type":2,"user_id":1,"other":"nope"}"#)[0].is_err());
    assert!(parse(r#"{"created_at":1,"type":2,"user_id":1,"other":[1]}"#)[0].is_err());
}

#[test]
fn oversized_and_unreadable_messages_are_rejected() {
    let big = format!(
        r#"{{"created_at":1,"type":2,"user_id":1,"content":"{}"}}"#,
        "x".repeat(LIMIT)
    );
    assert!(
        parse(&big)[0]
            .as_ref()
            .unwrap_err()
            .reason
            .contains("over the limit")
    );
    assert!(parse_log_message(b"not json", "t", 0, 0, &limits()).is_err());
    assert!(parse_log_message(b"[1,", "t", 0, 0, &limits()).is_err());
    assert!(parse_log_message(b"", "t", 0, 0, &limits()).is_err());
    assert!(parse("[1]")[0].is_err());
}

#[test]
fn rejections_are_classified_where_they_are_found() {
    let kind = |payload: &str| parse(payload)[0].as_ref().unwrap_err().kind;
    assert_eq!(kind(r#"{"type":2}"#), RejectKind::InvalidEvent);
    assert_eq!(
        kind(r#"{"created_at":1,"type":99,"user_id":1}"#),
        RejectKind::InvalidEvent
    );
    let big = "x".repeat(LIMIT + 1);
    assert_eq!(
        kind(&format!(r#"{{"content":"{big}"}}"#)),
        RejectKind::Oversized
    );
    for unreadable in [&b"nope"[..], b"", b"[1,", b"42"] {
        let error = parse_log_message(unreadable, "t", 0, 0, &limits()).unwrap_err();
        assert_eq!(error.kind, RejectKind::Unreadable, "{unreadable:?}");
    }
}

#[test]
fn each_event_knows_its_place_in_the_message() {
    let payload = br#" [ {"created_at":1,"type":2,"user_id":1} ,{"x":"]"}]"#;
    let events = parse_log_message(payload, "t", 0, 0, &limits()).expect("readable");
    assert_eq!(events.len(), 2);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.index, Some(i));
        assert_eq!(&payload[event.span.clone()], event.raw);
    }
    assert_eq!(events[1].raw, br#"{"x":"]"}"#);
    let single = br#"{"created_at":1,"type":2,"user_id":1}"#;
    let events = parse_log_message(single, "t", 0, 0, &limits()).expect("readable");
    assert_eq!(events[0].index, None);
    assert_eq!(events[0].span, 0..single.len());
}

#[test]
fn a_message_over_the_event_limit_is_refused_once_as_it_is_read() {
    // Valid up to the limit, one element more is refused whole (not one letter per element).
    let at_limit = format!("[{}]", vec!["1"; 100].join(","));
    assert_eq!(
        parse_log_message(at_limit.as_bytes(), "t", 0, 0, &limits())
            .expect("readable")
            .len(),
        100
    );
    let over = format!("[{}]", vec!["1"; 5_000_000].join(","));
    let error = parse_log_message(over.as_bytes(), "t", 0, 0, &limits()).unwrap_err();
    assert_eq!(error.kind, RejectKind::Oversized);
    assert!(
        error.reason.contains("more than 100 events"),
        "{}",
        error.reason
    );
    // A syntax error inside the limit stays unreadable.
    let broken = parse_log_message(b"[1,2,", "t", 0, 0, &limits()).unwrap_err();
    assert_eq!(broken.kind, RejectKind::Unreadable);
    let trailing = parse_log_message(b"[1] x", "t", 0, 0, &limits()).unwrap_err();
    assert_eq!(trailing.kind, RejectKind::Unreadable);
}

#[test]
fn created_at_outside_the_window_is_refused_with_its_reason() {
    let window = limits().with_created_at(1_700_000_000..=1_700_000_300);
    let at = |t: u32| format!(r#"{{"created_at":{t},"type":2,"user_id":1}}"#);
    let judged = |payload: String| {
        parse_log_message(payload.as_bytes(), "t", 0, 0, &window)
            .expect("readable")
            .remove(0)
            .row
    };
    assert!(judged(at(1_700_000_000)).is_ok());
    assert!(judged(at(1_700_000_300)).is_ok());
    for outside in [1_699_999_999, 1_700_000_301, 4_000_000_000] {
        let error = judged(at(outside)).unwrap_err();
        assert_eq!(error.kind, RejectKind::OutOfWindow);
        assert!(
            error.reason.contains(&outside.to_string()),
            "{}",
            error.reason
        );
    }
    // Array elements are judged alone.
    let array = format!("[{},{}]", at(1_700_000_100), at(2_000_000_000));
    let events = parse_log_message(array.as_bytes(), "t", 0, 0, &window).expect("readable");
    assert!(events[0].row.is_ok());
    assert_eq!(
        events[1].row.as_ref().unwrap_err().kind,
        RejectKind::OutOfWindow
    );
}

mod contract_doc_tests {
    use super::*;

    /// The example in docs/events.md must stay a valid event.
    #[test]
    fn documented_example_is_valid() {
        let doc = include_str!("../../../docs/events.md");
        let start =
            doc.find("```json\n{\"event_id\"").expect("example present") + "```json\n".len();
        let end = start + doc[start..].find("```").expect("example closed");
        let example = doc[start..end].replace('\n', "");
        let events = parse_log_message(example.as_bytes(), "gateway.logs", 0, 0, &limits())
            .expect("readable");
        let row = events[0]
            .row
            .as_ref()
            .expect("the documented example is valid");
        assert_eq!(row.model_name, "gpt-4o");
        assert!(row.other.contains("admin_info"));
    }

    /// Every field of the row is documented in docs/events.schema.json.
    #[test]
    fn schema_lists_every_event_field() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/events.schema.json")).expect("JSON");
        let properties = schema["$defs"]["logEvent"]["properties"]
            .as_object()
            .expect("logEvent properties");
        let event = serde_json::to_value(LogEvent {
            event_id: Some(Uuid::nil()),
            username: Some(String::new()),
            token_id: Some(0),
            token_name: Some(String::new()),
            model_name: Some(String::new()),
            quota: Some(0),
            prompt_tokens: Some(0),
            completion_tokens: Some(0),
            use_time: Some(0),
            is_stream: Some(false),
            channel_id: Some(0),
            channel_name: Some(String::new()),
            group: Some(String::new()),
            ip: Some(String::new()),
            request_id: Some(String::new()),
            upstream_request_id: Some(String::new()),
            content: Some(String::new()),
            other: Some(serde_json::json!({})),
            ..LogEvent::default()
        })
        .expect("serializable");
        let fields: Vec<&String> = event.as_object().expect("object").keys().collect();
        for field in &fields {
            assert!(
                properties.contains_key(*field),
                "{field} missing from the schema"
            );
        }
        assert_eq!(
            fields.len(),
            properties.len(),
            "schema lists no extra fields"
        );
    }
}

#[test]
fn token_counts_cannot_be_negative_but_quota_can() {
    let with = |field: &str, value: i64| {
        parse(&format!(
            r#"{{"created_at":1700000000,"type":2,"user_id":1,"{field}":{value}}}"#
        ))
        .remove(0)
    };
    // new-api logs a re-billed task's delta, which may be negative.
    assert_eq!(with("quota", -500).expect("valid").quota, -500);
    for field in ["prompt_tokens", "completion_tokens", "use_time"] {
        assert!(with(field, 0).is_ok(), "{field}");
        let error = with(field, -1).unwrap_err();
        assert_eq!(error.kind, RejectKind::InvalidEvent, "{field}");
        assert!(error.reason.contains(field), "{}", error.reason);
    }
}
