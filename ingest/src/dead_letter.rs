//! Dead letters: what cannot be ingested goes to the dead-letter topic with its original
//! bytes and the headers of the contract (docs/ingest.md, "Dead letters").
//!
//! [`DeadLetter::new`] is the one place the headers are built, for all three sources of
//! dead letters (an unreadable message, a rejected event, a row ClickHouse refused): the
//! header names and values cannot drift apart. Building a letter is pure; [`DeadLetterQueue`]
//! produces it and keeps its delivery until the broker acknowledged it.

use std::time::Instant;

use logbus_projections::redact::redact_credentials;
use logbus_projections::reject::{RejectKind, Rejection};
use metrics::counter;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::Error;
use crate::metrics::names;
use crate::retry::{Backoff, Retrier};
use crate::source::{Kind, TopicPartition};

/// A dead letter, built but not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadLetter {
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) payload: Vec<u8>,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) kind: RejectKind,
}

impl DeadLetter {
    /// The letter of `payload` (a whole message, or one element of an array message when
    /// `index` is `Some`) read at `offset` of `source` (a `kind` partition) with `key`,
    /// refused for `rejection`. Headers: `reason`, `reason_class`, `source_topic`,
    /// `source_partition`, `source_offset`, `source_index` for array elements only, and
    /// `payload_withheld` when the payload is left out.
    ///
    /// Plain credentials are removed here, for every source of letters at once
    /// ([`logbus_projections::redact`]): hashed in a JSON payload and scrubbed from the
    /// reason; an identity payload that is not JSON is withheld.
    pub(crate) fn new(
        source: &TopicPartition,
        kind: Kind,
        offset: i64,
        index: Option<usize>,
        key: Option<Vec<u8>>,
        payload: &[u8],
        rejection: Rejection,
    ) -> Self {
        let redaction = redact_credentials(payload, kind == Kind::Identity);
        let mut headers = vec![
            ("reason", redaction.scrub(&rejection.reason)),
            ("reason_class", rejection.kind.as_str().to_owned()),
            ("source_topic", source.topic.clone()),
            ("source_partition", source.partition.to_string()),
            ("source_offset", offset.to_string()),
        ];
        if let Some(index) = index {
            headers.push(("source_index", index.to_string()));
        }
        if let Some(why) = redaction.withheld {
            headers.push(("payload_withheld", why.to_owned()));
        }
        Self {
            key,
            payload: redaction.payload,
            headers,
            kind: rejection.kind,
        }
    }

    /// The value of header `name`.
    #[cfg(test)]
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A dead letter handed to the producer, with its delivery if the local queue took it.
pub(crate) struct SentLetter {
    letter: DeadLetter,
    delivery: Option<DeliveryFuture>,
}

impl std::fmt::Debug for SentLetter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentLetter")
            .field("letter", &self.letter)
            .field("in_flight", &self.delivery.is_some())
            .finish()
    }
}

/// The producer of the dead-letter topic.
#[derive(Clone)]
pub(crate) struct DeadLetterQueue {
    producer: FutureProducer,
    topic: String,
}

impl std::fmt::Debug for DeadLetterQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeadLetterQueue")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl DeadLetterQueue {
    pub(crate) fn new(producer: FutureProducer, topic: String) -> Self {
        Self { producer, topic }
    }

    /// Produces the letter at once (counted by its reason class); its acknowledgement is
    /// awaited by [`Self::await_delivery`] before the batch's offsets are committed.
    pub(crate) fn send(&self, letter: DeadLetter) -> SentLetter {
        counter!(names::DEAD_LETTERS, "reason" => letter.kind.as_str()).increment(1);
        let delivery = self.enqueue(&letter);
        SentLetter { letter, delivery }
    }

    fn enqueue(&self, letter: &DeadLetter) -> Option<DeliveryFuture> {
        let mut headers = OwnedHeaders::new_with_capacity(letter.headers.len());
        for (key, value) in &letter.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        let mut record = FutureRecord::to(&self.topic)
            .payload(&letter.payload)
            .headers(headers);
        if let Some(key) = &letter.key {
            record = record.key(key);
        }
        // A full local queue is handled when the batch is flushed (re-sent and awaited).
        self.producer.send_result(record).ok()
    }

    /// Waits until the broker acknowledged every letter, re-sending failed ones with
    /// backoff: offsets are never committed past an unacknowledged dead letter. Gives up only
    /// at the shutdown deadline.
    pub(crate) async fn await_delivery(
        &self,
        letters: &mut [SentLetter],
        retrier: &Retrier,
    ) -> Result<(), Error> {
        for sent in letters {
            let mut backoff = Backoff::new();
            loop {
                let delivered = match sent.delivery.take() {
                    Some(delivery) => matches!(delivery.await, Ok(Ok(_))),
                    None => false,
                };
                if delivered {
                    break;
                }
                let wait = backoff.next_wait();
                if retrier
                    .stopping()
                    .is_some_and(|deadline| Instant::now() + wait > deadline)
                {
                    return Err(retrier.gave_up());
                }
                counter!(names::RETRIES, "op" => "dead_letter").increment(1);
                tracing::warn!(retry_in = ?wait, "dead letter not acknowledged; re-sending");
                tokio::time::sleep(wait).await;
                sent.delivery = self.enqueue(&sent.letter);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_name_the_source_and_the_typed_reason() {
        let source = TopicPartition::new("gateway.logs", 3);
        let rejection = Rejection::new(RejectKind::InvalidEvent, "type 9 is out of range");
        let letter = DeadLetter::new(
            &source,
            Kind::Logs,
            42,
            None,
            Some(b"k".to_vec()),
            b"{}",
            rejection,
        );
        let names: Vec<&str> = letter.headers.iter().map(|(key, _)| *key).collect();
        assert_eq!(
            names,
            [
                "reason",
                "reason_class",
                "source_topic",
                "source_partition",
                "source_offset"
            ]
        );
        assert_eq!(letter.header("reason"), Some("type 9 is out of range"));
        assert_eq!(letter.header("reason_class"), Some("invalid_event"));
        assert_eq!(letter.header("source_topic"), Some("gateway.logs"));
        assert_eq!(letter.header("source_partition"), Some("3"));
        assert_eq!(letter.header("source_offset"), Some("42"));
        assert_eq!(letter.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(letter.kind, RejectKind::InvalidEvent);
    }

    #[test]
    fn only_array_elements_carry_a_source_index() {
        let source = TopicPartition::new("t", 0);
        let rejection = Rejection::new(RejectKind::ClickHouseRejected, "rejected by ClickHouse");
        let letter = DeadLetter::new(&source, Kind::Logs, 7, Some(2), None, b"{}", rejection);
        assert_eq!(letter.header("source_index"), Some("2"));
        assert_eq!(letter.header("reason_class"), Some("clickhouse_rejected"));
    }
}
