//! The `gateway.logs` event contract (docs/events.md): parsing and validation of one Kafka
//! message into log rows, element by element, so that one bad element of an array never
//! costs the good ones.

use std::cell::Cell;
use std::ops::RangeInclusive;

use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};
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

/// What a message may hold beyond the contract's types: the size of an event, the number of
/// events of an array message, and the `created_at` window ([`crate::window`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageLimits {
    pub max_event_bytes: usize,
    pub max_events: usize,
    pub created_at: RangeInclusive<u32>,
}

impl MessageLimits {
    /// Events of at most `max_event_bytes`, messages of at most `max_events`, any
    /// `created_at` the contract allows.
    pub fn new(max_event_bytes: usize, max_events: usize) -> Self {
        Self {
            max_event_bytes,
            max_events,
            created_at: 1..=u32::MAX,
        }
    }

    /// The same limits with `created_at` restricted to `window`.
    pub fn with_created_at(self, window: RangeInclusive<u32>) -> Self {
        Self {
            created_at: window,
            ..self
        }
    }
}

/// Splits a message into its events and validates each. An `Err` means the message as a whole
/// is refused: [`RejectKind::Unreadable`] when it could not be read (not UTF-8 JSON, or neither
/// an object nor an array), [`RejectKind::Oversized`] when it holds more than
/// `limits.max_events` events (one dead letter instead of one per element; reading stops at
/// the first element over the limit).
pub fn parse_log_message<'a>(
    payload: &'a [u8],
    topic: &str,
    partition: i32,
    offset: i64,
    limits: &MessageLimits,
) -> Result<Vec<ParsedEvent<'a>>, Rejection> {
    let max_event_bytes = limits.max_event_bytes;
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
            let elements = bounded_elements(payload, limits.max_events)?;
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
                        row: parse_event(raw, source(index), max_event_bytes)
                            .and_then(|row| in_window(row, &limits.created_at)),
                    }
                })
                .collect())
        }
        Some(b'{') => Ok(vec![ParsedEvent {
            index: None,
            raw: payload,
            span: 0..payload.len(),
            row: parse_event(payload, source(0), max_event_bytes)
                .and_then(|row| in_window(row, &limits.created_at)),
        }]),
        None => Err(unreadable("message is empty".into())),
        Some(_) => Err(unreadable(
            "message is neither a JSON object nor a JSON array of objects".into(),
        )),
    }
}

/// The elements of an array message, at most `max`: a longer array is refused as it is read,
/// before its elements are collected.
fn bounded_elements(payload: &[u8], max: usize) -> Result<Vec<&RawValue>, Rejection> {
    struct Bounded<'c> {
        max: usize,
        over: &'c Cell<bool>,
    }
    impl<'de> Visitor<'de> for Bounded<'_> {
        type Value = Vec<&'de RawValue>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut elements = Vec::new();
            while let Some(element) = seq.next_element::<&'de RawValue>()? {
                if elements.len() == self.max {
                    self.over.set(true);
                    return Err(A::Error::custom("too many events"));
                }
                elements.push(element);
            }
            Ok(elements)
        }
    }
    impl<'de> DeserializeSeed<'de> for Bounded<'_> {
        type Value = Vec<&'de RawValue>;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }
    }
    let over = Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_slice(payload);
    let elements = Bounded { max, over: &over }
        .deserialize(&mut deserializer)
        .and_then(|elements| deserializer.end().map(|()| elements));
    elements.map_err(|e| {
        if over.get() {
            Rejection::new(
                RejectKind::Oversized,
                format!("message holds more than {max} events, over the limit"),
            )
        } else {
            Rejection::new(
                RejectKind::Unreadable,
                format!("message is not a valid JSON array: {e}"),
            )
        }
    })
}

/// Refuses a row whose `created_at` lies outside the accepted window.
fn in_window(row: LogRow, window: &RangeInclusive<u32>) -> Result<LogRow, Rejection> {
    if window.contains(&row.created_at) {
        return Ok(row);
    }
    Err(Rejection::new(
        RejectKind::OutOfWindow,
        format!(
            "created_at {} is outside the accepted window {}..={} around the message's time",
            row.created_at,
            window.start(),
            window.end()
        ),
    ))
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
        // Counts cannot be negative; `quota` can (new-api logs a re-billed task's delta,
        // `actual - pre-consumed`), so it is summed as sent.
        let counts = [
            ("prompt_tokens", self.prompt_tokens.unwrap_or_default()),
            (
                "completion_tokens",
                self.completion_tokens.unwrap_or_default(),
            ),
            ("use_time", i64::from(self.use_time.unwrap_or_default())),
        ];
        if let Some((field, value)) = counts.iter().find(|(_, value)| *value < 0) {
            return Err(invalid(format!("{field} {value} is negative")));
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
mod tests;
