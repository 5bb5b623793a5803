//! A partition's batch, as pure data and rules (no I/O, no clock of its own: callers pass
//! `now`): what adding a message's parsed events and rejections does to it, when it is full,
//! when it is due by age, the dead letters of what ClickHouse refuses, and the batch id.
//!
//! The batch keeps each message whole ([`SourceMessage`]) and, for every row, where its event
//! lies in its message ([`RowSource`]): what the parser found out is kept, not rebuilt, so a
//! row ClickHouse rejects is dead-lettered from a slice of its message.

use std::ops::Range;
use std::time::{Duration, Instant};

use logbus_projections::events::{MessageLimits, parse_log_message};
use logbus_projections::identity::{IdentityRow, parse_identity_message};
use logbus_projections::reject::{RejectKind, Rejection};
use logbus_projections::rows::{Intent, LogRow, TokenRow, UserRow};
use logbus_projections::window::CreatedAtWindow;
use sha2::{Digest, Sha256};

use crate::dead_letter::DeadLetter;
use crate::source::{Kind, SourceMessage, TopicPartition};

/// A planned (replayed) batch waits this long for its recorded last offset before it is
/// flushed as an ordinary batch (the tail can only be missing if the log was truncated).
pub(crate) const PLANNED_BATCH_PATIENCE: Duration = Duration::from_secs(30);

/// The size and age limits of an unplanned batch, and what a message may hold.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_rows: usize,
    pub(crate) max_bytes: usize,
    pub(crate) max_event_bytes: usize,
    pub(crate) max_events_per_message: usize,
    pub(crate) created_at: CreatedAtWindow,
    pub(crate) flush_interval: Duration,
}

impl Limits {
    /// What the parser accepts of a message of time `time` (see [`SourceMessage::time`]).
    fn message(&self, time: u32) -> MessageLimits {
        MessageLimits::new(self.max_event_bytes, self.max_events_per_message)
            .with_created_at(self.created_at.around(time))
    }
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
    /// Payload bytes of the messages and of the dead letters sent while the batch was read
    /// (copies, held until the batch is written: they count in its memory).
    pub(crate) bytes: usize,
    /// Dead letters sent while the batch was read: they count as rows in its limits.
    pub(crate) dead_letters: usize,
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
        self.rows.len() + self.users.len() + self.tokens.len() + self.dead_letters
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
                kind,
                offset,
                index,
                message.key.clone(),
                payload,
                rejection,
            )
        };
        match kind {
            Kind::Logs => match parse_log_message(
                &message.payload,
                &source.topic,
                source.partition,
                offset,
                &limits.message(message.time),
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
        self.dead_letters += added.dead.len();
        self.bytes += added.dead.iter().map(|l| l.payload.len()).sum::<usize>();
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
            Kind::Logs,
            message.offset,
            row.index,
            message.key.clone(),
            payload,
            clickhouse_rejected(reason),
        )
    }

    /// The dead letters of every message, when ClickHouse refused the batch's identity rows
    /// (their credentials removed by [`DeadLetter::new`], as every letter's).
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
                    Kind::Identity,
                    message.offset,
                    None,
                    message.key.clone(),
                    &message.payload,
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
pub(crate) mod tests;
