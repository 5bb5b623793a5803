//! Why logbus refuses an event: a typed kind (the `reason_class` header of the dead letter,
//! and the label of the dead-letter counter) and the human-readable reason. The parsers decide
//! the kind where they know it, so nothing downstream recovers it from the text.

/// The class of a rejection. The strings are part of the dead-letter contract
/// (docs/events.md): consumers of the dead-letter topic branch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectKind {
    /// The message as a whole cannot be read: empty, not JSON, or neither an object nor an
    /// array of objects.
    Unreadable,
    /// An event larger than the configured limit, or a message of more events than the
    /// configured limit.
    Oversized,
    /// A log event that breaks the contract (missing or mistyped field, value out of range).
    InvalidEvent,
    /// An identity event that breaks the contract.
    InvalidIdentity,
    /// A valid event whose `created_at` lies outside the accepted window around its
    /// message's time ([`crate::window`]).
    OutOfWindow,
    /// The event was valid but ClickHouse refused the row it became.
    ClickHouseRejected,
}

impl RejectKind {
    pub const ALL: [RejectKind; 6] = [
        RejectKind::Unreadable,
        RejectKind::Oversized,
        RejectKind::InvalidEvent,
        RejectKind::InvalidIdentity,
        RejectKind::OutOfWindow,
        RejectKind::ClickHouseRejected,
    ];

    /// The `reason_class` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::Unreadable => "unreadable",
            RejectKind::Oversized => "oversized",
            RejectKind::InvalidEvent => "invalid_event",
            RejectKind::InvalidIdentity => "invalid_identity",
            RejectKind::OutOfWindow => "out_of_window",
            RejectKind::ClickHouseRejected => "clickhouse_rejected",
        }
    }
}

impl std::fmt::Display for RejectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused event or message: its kind and why (the dead letter's `reason` header).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Rejection {
    pub kind: RejectKind,
    pub reason: String,
}

impl Rejection {
    pub fn new(kind: RejectKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
        }
    }

    /// The rejection of an event of `size` bytes over the `limit`.
    pub fn oversized(size: usize, limit: usize) -> Self {
        Self::new(
            RejectKind::Oversized,
            format!("event is {size} bytes, over the limit of {limit}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_classes_are_distinct_snake_case() {
        let names: std::collections::HashSet<_> =
            RejectKind::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(names.len(), RejectKind::ALL.len());
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
        assert_eq!(Rejection::oversized(10, 5).kind, RejectKind::Oversized);
    }
}
