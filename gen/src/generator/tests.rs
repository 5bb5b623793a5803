//! The generator: deterministic data sets, valid events, seeded or random ids.

use logbus_projections::events::{EventSource, LogEvent};

use super::*;

fn shape() -> Shape {
    Shape {
        rows: 5_000,
        span_days: 1,
        users: 100,
        tokens: 150,
        models: 20,
        channels: 12,
        groups: 4,
        seed: 9,
        end: 1_700_006_400,
    }
}

#[test]
fn a_data_set_is_deterministic_and_in_time_order() {
    let rows = |shape| {
        let mut generator = Generator::with_shape(shape);
        let mut rows = Vec::new();
        while let Some(chunk) = generator.next_chunk(1_000) {
            rows.extend(chunk);
        }
        rows
    };
    let first = rows(shape());
    assert_eq!(first.len(), 5_000);
    assert_eq!(first, rows(shape()));
    assert!(first.windows(2).all(|w| w[0].created_at <= w[1].created_at));
    assert!(first.iter().all(|r| (1..=100).contains(&r.user_id)));
}

#[test]
fn events_are_valid_under_the_contract() {
    let mut generator = Generator::new(3, 50);
    let source = EventSource {
        topic: "t",
        partition: 0,
        offset: 0,
        index: 0,
    };
    for _ in 0..500 {
        let event = generator.next_event(1_700_000_000);
        let json = serde_json::to_vec(&event).expect("serializes");
        let parsed: LogEvent = serde_json::from_slice(&json).expect("parses");
        let row = parsed.into_row(source).expect("valid");
        assert_eq!(Some(row.event_id), event.event_id);
    }
}

#[test]
fn live_ids_are_random_unless_asked_otherwise() {
    let a = Generator::new(1, 10).next_event(1_700_000_000);
    let b = Generator::new(1, 10).next_event(1_700_000_000);
    assert_ne!(a.event_id, b.event_id);
    assert_eq!(a.user_id, b.user_id, "everything else is seeded");
    let c = Generator::new(1, 10)
        .with_deterministic_ids(true)
        .next_event(1_700_000_000);
    let d = Generator::new(1, 10)
        .with_deterministic_ids(true)
        .next_event(1_700_000_000);
    assert_eq!(c, d);
}
