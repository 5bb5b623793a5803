//! The `gateway.logs` event contract (docs/events.md): parsing and validation of one Kafka
//! message into log rows, element by element, so that one bad element of an array never
//! costs the good ones.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::reject::{RejectKind, Rejection};
use crate::rows::LogRow;

/// Log types of new-api: 1 top-up, 2 consume, 3 manage, 4 system, 5 error, 6 refund, 7 login.
pub const LOG_TYPES: std::ops::RangeInclusive<i64> = 1..=7;
pub const LOG_TYPE_CONSUME: u8 = 2;

/// Namespace of the UUIDv5 given to events that arrive without an `event_id`.
pub const DERIVED_EVENT_ID_NAMESPACE: Uuid =
    Uuid::from_u128(0x6c6f_6762_7573_4000_8000_6576_656e_7473);

/// A log event as gateways publish it. Field names are new-api's log columns; unknown fields
/// are ignored. Optional fields accept `null` as absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    pub created_at: i64,
    #[serde(rename = "type")]
    pub log_type: i64,
    pub user_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_time: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// A JSON object, or a string holding one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<serde_json::Value>,
}

/// Where an event came from: used to derive a stable id for events that carry none.
#[derive(Debug, Clone, Copy)]
pub struct EventSource<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Position of the event in its message (0 for a single-object message).
    pub index: usize,
}

impl EventSource<'_> {
    pub fn derived_event_id(&self) -> Uuid {
        let name = format!(
            "{}/{}/{}/{}",
            self.topic, self.partition, self.offset, self.index
        );
        Uuid::new_v5(&DERIVED_EVENT_ID_NAMESPACE, name.as_bytes())
    }
}

/// One event of a message and the outcome of validating it.
#[derive(Debug)]
pub struct ParsedEvent<'a> {
    /// Position of the event in its message's array; `None` when the message is one object.
    pub index: Option<usize>,
    /// The event's JSON text, what its dead letter carries: a slice of the message.
    pub raw: &'a [u8],
    /// Where [`Self::raw`] lies in the message, so that a batch can keep the message alone and
    /// still find the event again (when ClickHouse rejects its row).
    pub span: std::ops::Range<usize>,
    pub row: Result<LogRow, Rejection>,
}

/// Splits a message into its events and validates each. An `Err` (always
/// [`RejectKind::Unreadable`]) means the message as a whole could not be read: not UTF-8
/// JSON, or neither an object nor an array.
pub fn parse_log_message<'a>(
    payload: &'a [u8],
    topic: &str,
    partition: i32,
    offset: i64,
    max_event_bytes: usize,
) -> Result<Vec<ParsedEvent<'a>>, Rejection> {
    let unreadable = |reason: String| Rejection::new(RejectKind::Unreadable, reason);
    let source = |index| EventSource {
        topic,
        partition,
        offset,
        index,
    };
    let first = payload.iter().find(|b| !b.is_ascii_whitespace()).copied();
    match first {
        Some(b'[') => {
            let elements: Vec<&RawValue> = serde_json::from_slice(payload)
                .map_err(|e| unreadable(format!("message is not a valid JSON array: {e}")))?;
            Ok(elements
                .into_iter()
                .enumerate()
                .map(|(index, raw)| {
                    let raw = raw.get().as_bytes();
                    // The element borrows from `payload`: its address gives its position.
                    let start = raw.as_ptr() as usize - payload.as_ptr() as usize;
                    ParsedEvent {
                        index: Some(index),
                        raw,
                        span: start..start + raw.len(),
                        row: parse_event(raw, source(index), max_event_bytes),
                    }
                })
                .collect())
        }
        Some(b'{') => Ok(vec![ParsedEvent {
            index: None,
            raw: payload,
            span: 0..payload.len(),
            row: parse_event(payload, source(0), max_event_bytes),
        }]),
        None => Err(unreadable("message is empty".into())),
        Some(_) => Err(unreadable(
            "message is neither a JSON object nor a JSON array of objects".into(),
        )),
    }
}

/// Validates one event's JSON text into a row (`ingest_batch` left 0 for the caller to set).
pub fn parse_event(
    raw: &[u8],
    source: EventSource<'_>,
    max_event_bytes: usize,
) -> Result<LogRow, Rejection> {
    if raw.len() > max_event_bytes {
        return Err(Rejection::oversized(raw.len(), max_event_bytes));
    }
    let event: LogEvent =
        serde_json::from_slice(raw).map_err(|e| invalid(format!("invalid event: {e}")))?;
    event.into_row(source)
}

fn invalid(reason: impl Into<String>) -> Rejection {
    Rejection::new(RejectKind::InvalidEvent, reason)
}

impl LogEvent {
    pub fn into_row(self, source: EventSource<'_>) -> Result<LogRow, Rejection> {
        let created_at = u32::try_from(self.created_at)
            .ok()
            .filter(|t| *t > 0)
            .ok_or_else(|| {
                invalid(format!(
                    "created_at {} is not a unix timestamp in seconds between 1 and {}",
                    self.created_at,
                    u32::MAX
                ))
            })?;
        if !LOG_TYPES.contains(&self.log_type) {
            return Err(invalid(format!(
                "type {} is out of range {}..={}",
                self.log_type,
                LOG_TYPES.start(),
                LOG_TYPES.end()
            )));
        }
        if self.user_id < 0 {
            return Err(invalid(format!("user_id {} is negative", self.user_id)));
        }
        let other = match self.other {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::Object(map)) => serde_json::Value::Object(map).to_string(),
            Some(serde_json::Value::String(text)) if text.trim().is_empty() => String::new(),
            Some(serde_json::Value::String(text)) => {
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Ok(serde_json::Value::Object(_)) => text,
                    _ => {
                        return Err(invalid(
                            "other must be a JSON object or a string holding one",
                        ));
                    }
                }
            }
            Some(_) => {
                return Err(invalid(
                    "other must be a JSON object or a string holding one",
                ));
            }
        };
        Ok(LogRow {
            event_id: self.event_id.unwrap_or_else(|| source.derived_event_id()),
            created_at,
            log_type: self.log_type as u8,
            user_id: self.user_id,
            username: self.username.unwrap_or_default(),
            token_id: self.token_id.unwrap_or_default(),
            token_name: self.token_name.unwrap_or_default(),
            model_name: self.model_name.unwrap_or_default(),
            quota: self.quota.unwrap_or_default(),
            prompt_tokens: self.prompt_tokens.unwrap_or_default(),
            completion_tokens: self.completion_tokens.unwrap_or_default(),
            use_time: self.use_time.unwrap_or_default(),
            is_stream: self.is_stream.unwrap_or_default(),
            channel_id: self.channel_id.unwrap_or_default(),
            channel_name: self.channel_name.unwrap_or_default(),
            group: self.group.unwrap_or_default(),
            ip: self.ip.unwrap_or_default(),
            request_id: self.request_id.unwrap_or_default(),
            upstream_request_id: self.upstream_request_id.unwrap_or_default(),
            content: self.content.unwrap_or_default(),
            other,
            ingest_batch: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 64 * 1024;

    fn parse(payload: &str) -> Vec<Result<LogRow, Rejection>> {
        parse_log_message(payload.as_bytes(), "gateway.logs", 3, 42, LIMIT)
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
            LIMIT,
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
        assert!(parse_log_message(b"not json", "t", 0, 0, LIMIT).is_err());
        assert!(parse_log_message(b"[1,", "t", 0, 0, LIMIT).is_err());
        assert!(parse_log_message(b"", "t", 0, 0, LIMIT).is_err());
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
            let error = parse_log_message(unreadable, "t", 0, 0, LIMIT).unwrap_err();
            assert_eq!(error.kind, RejectKind::Unreadable, "{unreadable:?}");
        }
    }

    #[test]
    fn each_event_knows_its_place_in_the_message() {
        let payload = br#" [ {"created_at":1,"type":2,"user_id":1} ,{"x":"]"}]"#;
        let events = parse_log_message(payload, "t", 0, 0, LIMIT).expect("readable");
        assert_eq!(events.len(), 2);
        for (i, event) in events.iter().enumerate() {
            assert_eq!(event.index, Some(i));
            assert_eq!(&payload[event.span.clone()], event.raw);
        }
        assert_eq!(events[1].raw, br#"{"x":"]"}"#);
        let single = br#"{"created_at":1,"type":2,"user_id":1}"#;
        let events = parse_log_message(single, "t", 0, 0, LIMIT).expect("readable");
        assert_eq!(events[0].index, None);
        assert_eq!(events[0].span, 0..single.len());
    }
}

#[cfg(test)]
mod contract_doc_tests {
    use super::*;

    /// The example in docs/events.md must stay a valid event.
    #[test]
    fn documented_example_is_valid() {
        let doc = include_str!("../../docs/events.md");
        let start =
            doc.find("```json\n{\"event_id\"").expect("example present") + "```json\n".len();
        let end = start + doc[start..].find("```").expect("example closed");
        let example = doc[start..end].replace('\n', "");
        let events = parse_log_message(example.as_bytes(), "gateway.logs", 0, 0, 64 * 1024)
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
            serde_json::from_str(include_str!("../../docs/events.schema.json")).expect("JSON");
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
