//! A partition's batch, as pure data and rules (no I/O, no clock of its own: callers pass
//! `now`): what adding a message's parsed events and rejections does to it, when it is full,
//! when it is due by age, the dead letters of what ClickHouse refuses, and the batch id.
//!
//! The batch keeps each message whole ([`SourceMessage`]) and, for every row, where its event
//! lies in its message ([`RowSource`]): what the parser found out is kept, not rebuilt, so a
//! row ClickHouse rejects is dead-lettered from a slice of its message.

use std::ops::Range;
use std::time::{Duration, Instant};

use logbus_projections::events::parse_log_message;
use logbus_projections::identity::{IdentityRow, parse_identity_message};
use logbus_projections::reject::{RejectKind, Rejection};
use logbus_projections::rows::{Intent, LogRow, TokenRow, UserRow};
use sha2::{Digest, Sha256};

use crate::dead_letter::DeadLetter;
use crate::source::{Kind, SourceMessage, TopicPartition};

/// A planned (replayed) batch waits this long for its recorded last offset before it is
/// flushed as an ordinary batch (the tail can only be missing if the log was truncated).
pub(crate) const PLANNED_BATCH_PATIENCE: Duration = Duration::from_secs(30);

/// The size and age limits of an unplanned batch, and the event size limit.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_rows: usize,
    pub(crate) max_bytes: usize,
    pub(crate) max_event_bytes: usize,
    pub(crate) flush_interval: Duration,
}

/// Where a row's event lies: which message of the batch, its position in the message's
/// array (`None` for a single-object message) and its byte range in the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowSource {
    pub(crate) message: usize,
    pub(crate) index: Option<usize>,
    pub(crate) span: Range<usize>,
}

#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) first_offset: i64,
    pub(crate) last_offset: i64,
    pub(crate) started: Option<Instant>,
    /// Payload bytes of the messages.
    pub(crate) bytes: usize,
    /// The messages, to hash the batch and to dead-letter rows that ClickHouse rejects.
    pub(crate) messages: Vec<SourceMessage>,
    pub(crate) rows: Vec<LogRow>,
    /// For each row, where its event came from.
    pub(crate) sources: Vec<RowSource>,
    pub(crate) users: Vec<UserRow>,
    pub(crate) tokens: Vec<TokenRow>,
    /// The recorded intent this batch replays (see [`crate::plan`]).
    pub(crate) planned: Option<Intent>,
}

/// What adding one message produced besides rows.
#[derive(Debug, Default)]
pub(crate) struct Added {
    /// Log events in the message (array elements counted; 0 if it was unreadable).
    pub(crate) events: usize,
    /// Dead letters of the message or of its rejected events, to be sent at once.
    pub(crate) dead: Vec<DeadLetter>,
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    fn row_count(&self) -> usize {
        self.rows.len() + self.users.len() + self.tokens.len()
    }

    /// The offset to commit once the batch is written.
    pub(crate) fn next_offset(&self) -> i64 {
        self.last_offset + 1
    }

    /// Parses `message` of `source` (a `kind` partition) into the batch. `planned` is the
    /// intent the message starts (see [`crate::plan::Plan::start`]); it is taken only when the
    /// message opens the batch.
    pub(crate) fn add(
        &mut self,
        source: &TopicPartition,
        kind: Kind,
        message: SourceMessage,
        planned: Option<Intent>,
        limits: &Limits,
        now: Instant,
    ) -> Added {
        let offset = message.offset;
        if self.is_empty() {
            self.first_offset = offset;
            self.started = Some(now);
            self.planned = planned;
        }
        self.last_offset = offset;
        self.bytes += message.payload.len();
        let position = self.messages.len();
        let mut added = Added::default();
        let letter = |index, payload: &[u8], rejection| {
            DeadLetter::new(
                source,
                offset,
                index,
                message.key.clone(),
                payload.to_vec(),
                rejection,
            )
        };
        match kind {
            Kind::Logs => match parse_log_message(
                &message.payload,
                &source.topic,
                source.partition,
                offset,
                limits.max_event_bytes,
            ) {
                Err(rejection) => added.dead.push(letter(None, &message.payload, rejection)),
                Ok(events) => {
                    added.events = events.len();
                    for event in events {
                        match event.row {
                            Ok(row) => {
                                self.rows.push(row);
                                self.sources.push(RowSource {
                                    message: position,
                                    index: event.index,
                                    span: event.span,
                                });
                            }
                            Err(rejection) => {
                                added.dead.push(letter(event.index, event.raw, rejection));
                            }
                        }
                    }
                }
            },
            Kind::Identity => {
                match parse_identity_message(&message.payload, limits.max_event_bytes) {
                    Ok(IdentityRow::User(row)) => self.users.push(row),
                    Ok(IdentityRow::Token(row)) => self.tokens.push(row),
                    Err(rejection) => added.dead.push(letter(None, &message.payload, rejection)),
                }
            }
        }
        self.messages.push(message);
        added
    }

    /// Whether the batch must be flushed now that a message was added: a planned batch at its
    /// recorded last offset (and only there), any other at the size limits.
    pub(crate) fn is_full(&self, limits: &Limits) -> bool {
        match &self.planned {
            Some(intent) => self.last_offset >= intent.last_offset,
            None => self.row_count() >= limits.max_rows || self.bytes >= limits.max_bytes,
        }
    }

    /// Whether the batch is due by age at `now`: the flush interval after its first message,
    /// or [`PLANNED_BATCH_PATIENCE`] for a planned batch.
    pub(crate) fn is_due(&self, now: Instant, limits: &Limits) -> bool {
        if self.is_empty() {
            return false;
        }
        let age = self.started.map_or(Duration::ZERO, |started| {
            now.saturating_duration_since(started)
        });
        match self.planned {
            Some(_) => age >= PLANNED_BATCH_PATIENCE,
            None => age >= limits.flush_interval,
        }
    }

    /// The dead letter of a row ClickHouse refused: its event's bytes, sliced from its
    /// message.
    pub(crate) fn rejected_row(
        &self,
        source: &TopicPartition,
        row: &RowSource,
        reason: impl std::fmt::Display,
    ) -> DeadLetter {
        let message = &self.messages[row.message];
        let payload = message
            .payload
            .get(row.span.clone())
            .unwrap_or(&message.payload);
        DeadLetter::new(
            source,
            message.offset,
            row.index,
            message.key.clone(),
            payload.to_vec(),
            clickhouse_rejected(reason),
        )
    }

    /// The dead letters of every message, when ClickHouse refused the batch's identity rows.
    pub(crate) fn rejected_messages(
        &self,
        source: &TopicPartition,
        reason: impl std::fmt::Display,
    ) -> Vec<DeadLetter> {
        self.messages
            .iter()
            .map(|message| {
                DeadLetter::new(
                    source,
                    message.offset,
                    None,
                    message.key.clone(),
                    message.payload.clone(),
                    clickhouse_rejected(&reason),
                )
            })
            .collect()
    }
}

fn clickhouse_rejected(reason: impl std::fmt::Display) -> Rejection {
    Rejection::new(
        RejectKind::ClickHouseRejected,
        format!("rejected by ClickHouse: {reason}"),
    )
}

/// The batch id: a hash of topic, partition, offset range and the first and last payloads
/// (so that a recreated topic reusing offsets never collides with old batches).
pub(crate) fn batch_id(source: &TopicPartition, batch: &Batch) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(source.topic.as_bytes());
    hasher.update([0]);
    hasher.update(source.partition.to_be_bytes());
    hasher.update(batch.first_offset.to_be_bytes());
    hasher.update(batch.last_offset.to_be_bytes());
    if let Some(first) = batch.messages.first() {
        hasher.update(Sha256::digest(&first.payload));
    }
    if let Some(last) = batch.messages.last() {
        hasher.update(Sha256::digest(&last.payload));
    }
    let digest = hasher.finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const EVENT: &str = r#"{"created_at":1700000000,"type":2,"user_id":7}"#;

    pub(crate) fn limits() -> Limits {
        Limits {
            max_rows: 3,
            max_bytes: 1_000,
            max_event_bytes: 200,
            flush_interval: Duration::from_millis(200),
        }
    }

    pub(crate) fn message(offset: i64, payload: &str) -> SourceMessage {
        SourceMessage {
            offset,
            key: Some(b"7".to_vec()),
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

    fn header<'a>(letter: &'a DeadLetter, name: &str) -> Option<&'a str> {
        letter
            .headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
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
        assert_eq!(header(letter, "reason_class"), Some("unreadable"));
        assert_eq!(header(letter, "source_offset"), Some("5"));
        assert_eq!(header(letter, "source_index"), None);
        assert_eq!(letter.payload, b"not json");
        assert_eq!(letter.key.as_deref(), Some(&b"7"[..]));

        let array = format!(r#"[{EVENT},{{"type":2}},{{"big":"{}"}}]"#, "x".repeat(300));
        let added = add(&mut batch, 6, &array);
        assert_eq!(added.events, 3);
        assert_eq!(added.dead.len(), 2);
        assert_eq!(
            header(&added.dead[0], "reason_class"),
            Some("invalid_event")
        );
        assert_eq!(header(&added.dead[0], "source_index"), Some("1"));
        assert_eq!(added.dead[0].payload, br#"{"type":2}"#);
        assert_eq!(header(&added.dead[1], "reason_class"), Some("oversized"));
        assert_eq!(header(&added.dead[1], "source_index"), Some("2"));

        let single = add(&mut batch, 7, r#"{"type":2}"#);
        assert_eq!(
            header(&single.dead[0], "reason_class"),
            Some("invalid_event")
        );
        assert_eq!(header(&single.dead[0], "source_index"), None);

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
            header(&added.dead[0], "reason_class"),
            Some("invalid_identity")
        );
        assert_eq!(
            header(&added.dead[0], "source_topic"),
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
        assert_eq!(header(&single, "source_index"), None);
        assert_eq!(header(&single, "reason_class"), Some("clickhouse_rejected"));
        assert_eq!(
            header(&single, "reason"),
            Some("rejected by ClickHouse: Code: 53")
        );
        let element = batch.rejected_row(&logs(), &batch.sources[2], "Code: 53");
        assert_eq!(element.payload, EVENT.as_bytes());
        assert_eq!(header(&element, "source_index"), Some("1"));
        assert_eq!(header(&element, "source_offset"), Some("1"));

        let all = batch.rejected_messages(&logs(), "Code: 53");
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|l| header(l, "source_index").is_none()));
        assert_eq!(all[1].payload, batch.messages[1].payload);
    }
}
