//! A `gateway.logs` message, any bytes, through the parser ingest runs on every message
//! (`parse_log_message`), under ingest's default limits and under tight ones (so that the
//! oversized paths are reached by inputs of libFuzzer's default length). Beyond "no panic",
//! every row that comes out must respect the contract of docs/events.md: a row that breaks it
//! would be stored and counted.

#![no_main]

use libfuzzer_sys::fuzz_target;
use logbus_projections::events::{
    EventSource, LOG_TYPES, LogEvent, MessageLimits, ParsedEvent, parse_event, parse_log_message,
};
use logbus_projections::reject::RejectKind;
use logbus_projections::rows::LogRow;
use logbus_projections::window::CreatedAtWindow;

const TOPIC: &str = "gateway.logs";
const PARTITION: i32 = 3;
const OFFSET: i64 = 42;
/// The message's time: the docs' example event's `created_at`.
const MESSAGE_TIME: u32 = 1_764_201_600;

/// ingest's `DEFAULT_MAX_EVENT_BYTES` and `DEFAULT_MAX_EVENTS_PER_MESSAGE` (ingest/src/config.rs;
/// not a dependency: it would bring librdkafka into the fuzz build).
const INGEST_LIMITS: (usize, usize) = (256 * 1024, 10_000);
const TIGHT_LIMITS: (usize, usize) = (96, 3);

fuzz_target!(|data: &[u8]| {
    let window = CreatedAtWindow::default().around(MESSAGE_TIME);
    for (max_event_bytes, max_events) in [INGEST_LIMITS, TIGHT_LIMITS] {
        let limits =
            MessageLimits::new(max_event_bytes, max_events).with_created_at(window.clone());
        check_message(data, &limits);
    }
});

fn check_message(data: &[u8], limits: &MessageLimits) {
    let events = match parse_log_message(data, TOPIC, PARTITION, OFFSET, limits) {
        Ok(events) => events,
        Err(rejection) => {
            assert!(
                matches!(
                    rejection.kind,
                    RejectKind::Unreadable | RejectKind::Oversized
                ),
                "a whole message is refused as unreadable or oversized, not {rejection:?}"
            );
            return;
        }
    };
    assert!(events.len() <= limits.max_events, "{} events", events.len());
    let single = events.len() == 1 && events[0].index.is_none();
    for (position, event) in events.iter().enumerate() {
        assert_eq!(
            &data[event.span.clone()],
            event.raw,
            "the span locates the event"
        );
        assert_eq!(event.index, (!single).then_some(position));
        match &event.row {
            Ok(row) => check_row(event, position, row, limits),
            Err(rejection) => assert!(
                matches!(
                    rejection.kind,
                    RejectKind::InvalidEvent | RejectKind::Oversized | RejectKind::OutOfWindow
                ),
                "an event is refused as invalid, oversized or out of window, not {rejection:?}"
            ),
        }
    }
}

fn check_row(event: &ParsedEvent<'_>, position: usize, row: &LogRow, limits: &MessageLimits) {
    assert!(event.raw.len() <= limits.max_event_bytes);
    assert!(row.created_at >= 1 && limits.created_at.contains(&row.created_at));
    assert!(LOG_TYPES.contains(&i64::from(row.log_type)), "{row:?}");
    assert!(row.user_id >= 0, "{row:?}");
    assert!(
        row.prompt_tokens >= 0 && row.completion_tokens >= 0 && row.use_time >= 0,
        "{row:?}"
    );
    assert_eq!(row.ingest_batch, 0, "the caller sets the batch");
    if !row.other.is_empty() {
        let other: serde_json::Value =
            serde_json::from_str(&row.other).expect("a stored other is JSON");
        assert!(
            other.is_object(),
            "a stored other is an object: {:?}",
            row.other
        );
    }

    let source = EventSource {
        topic: TOPIC,
        partition: PARTITION,
        offset: OFFSET,
        index: event.index.unwrap_or(0),
    };
    assert_eq!(event.index.unwrap_or(0), position);
    let parsed: LogEvent = serde_json::from_slice(event.raw).expect("an accepted event parses");
    if parsed.event_id.is_none() {
        assert_eq!(
            row.event_id,
            source.derived_event_id(),
            "an event without an id gets its source's"
        );
    }
    // What a replay of the message computes: the same row, id included.
    let again = parse_event(event.raw, source, limits.max_event_bytes).expect("accepted again");
    assert_eq!(&again, row);
    let direct = parsed
        .clone()
        .into_row(source)
        .expect("into_row accepts it too");
    assert_eq!(&direct, row);

    // The generator and the bridge publish serialized `LogEvent`s: what they write must read
    // back as the same row (`other` aside, whose text a re-serialization may reformat).
    let published = serde_json::to_vec(&parsed).expect("serializes");
    let republished: LogEvent = serde_json::from_slice(&published).expect("reads back");
    let mut round = republished.into_row(source).expect("still valid");
    round.other.clone_from(&row.other);
    assert_eq!(&round, row);
}
