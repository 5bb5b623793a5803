//! What the worker reads, named: a partition of a source topic, which of the two source
//! topics it belongs to, and one message as the worker keeps it. Every other module speaks
//! these types, so this one imports nothing of the crate.

use std::fmt;

use logbus_projections::window::message_time;
use rdkafka::Message;

/// A partition of a topic: the unit of batching, replay planning and committing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TopicPartition {
    pub(crate) topic: String,
    pub(crate) partition: i32,
}

impl TopicPartition {
    pub(crate) fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }

    /// The partition a message was read from.
    pub(crate) fn of(message: &impl Message) -> Self {
        Self::new(message.topic(), message.partition())
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic, self.partition)
    }
}

/// Which source topic a partition belongs to: it decides the parser and the tables.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Logs,
    Identity,
}

impl Kind {
    /// The `topic` label of the metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Logs => "logs",
            Kind::Identity => "identity",
        }
    }
}

/// One consumed message as a batch keeps it: its offset, key, time and payload. The payload
/// is kept whole (it is hashed into the batch id, and a row ClickHouse rejects is
/// dead-lettered from a slice of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceMessage {
    pub(crate) offset: i64,
    pub(crate) key: Option<Vec<u8>>,
    /// Unix seconds: the message's Kafka timestamp, never later than when it was read (see
    /// [`logbus_projections::window`]); the `created_at` window is judged around it, so a
    /// replay judges the message alike.
    pub(crate) time: u32,
    pub(crate) payload: Vec<u8>,
}

impl SourceMessage {
    pub(crate) fn of(message: &impl Message) -> Self {
        let read_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Self {
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            time: message_time(message.timestamp().to_millis(), read_at),
            payload: message.payload().unwrap_or_default().to_vec(),
        }
    }
}
