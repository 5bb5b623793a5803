//! Which `created_at` values are accepted: a window around the message's time (docs/events.md,
//! "The created_at window"). A far-future event would count in `rpm`/`tpm` and sort first in
//! every list for years; events spread over many days each open a partition of `logs`.
//!
//! The window is judged against the message's own time, its Kafka timestamp, not against the
//! worker's clock, so that a replay of the same message (after a crash, hours later) judges
//! every event the same way and the replayed batch holds the same rows. A Kafka timestamp
//! ahead of the worker's clock (a skewed producer) is capped at the time of reading.

use std::ops::RangeInclusive;

/// How far after the message's time `created_at` may be: gateway and producer are the same
/// process, so only clock jitter and queueing separate them.
pub const DEFAULT_MAX_FUTURE_SECS: u32 = 300;
/// How far before the message's time `created_at` may be: ten years, so that a backfill of a
/// gateway's whole history (logbus-bridge) is accepted.
pub const DEFAULT_MAX_AGE_SECS: u32 = 10 * 366 * 86_400;

/// The accepted window, relative to a message's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreatedAtWindow {
    pub max_future_secs: u32,
    /// `None`: no lower bound but the contract's (1).
    pub max_age_secs: Option<u32>,
}

impl Default for CreatedAtWindow {
    fn default() -> Self {
        Self {
            max_future_secs: DEFAULT_MAX_FUTURE_SECS,
            max_age_secs: Some(DEFAULT_MAX_AGE_SECS),
        }
    }
}

impl CreatedAtWindow {
    /// The accepted `created_at` values for a message of time `reference` (unix seconds).
    pub fn around(&self, reference: u32) -> RangeInclusive<u32> {
        let low = self
            .max_age_secs
            .map_or(1, |age| reference.saturating_sub(age).max(1));
        low..=reference.saturating_add(self.max_future_secs)
    }
}

/// A message's time: its Kafka timestamp (milliseconds; `None` or negative when the broker
/// has none), capped at `read_at` (the worker's clock, unix seconds) and falling back to it.
pub fn message_time(kafka_timestamp_ms: Option<i64>, read_at: u64) -> u32 {
    let read_at = u32::try_from(read_at).unwrap_or(u32::MAX);
    kafka_timestamp_ms
        .filter(|ms| *ms >= 0)
        .map_or(read_at, |ms| {
            u32::try_from(ms / 1000).unwrap_or(u32::MAX).min(read_at)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_surrounds_the_reference() {
        let window = CreatedAtWindow::default();
        let range = window.around(1_764_201_600);
        assert_eq!(*range.end(), 1_764_201_900);
        assert_eq!(*range.start(), 1_764_201_600 - DEFAULT_MAX_AGE_SECS);
        assert!(range.contains(&1_700_000_000), "2023 is accepted in 2025");
        let open = CreatedAtWindow {
            max_future_secs: 0,
            max_age_secs: None,
        };
        assert_eq!(open.around(100), 1..=100);
        assert_eq!(window.around(5), 1..=305);
        assert_eq!(*window.around(u32::MAX).end(), u32::MAX);
    }

    #[test]
    fn the_message_time_is_its_timestamp_never_later_than_reading() {
        assert_eq!(
            message_time(Some(1_700_000_000_999), 1_800_000_000),
            1_700_000_000
        );
        assert_eq!(
            message_time(Some(1_900_000_000_000), 1_800_000_000),
            1_800_000_000
        );
        assert_eq!(message_time(None, 1_800_000_000), 1_800_000_000);
        assert_eq!(message_time(Some(-1), 1_800_000_000), 1_800_000_000);
    }
}
