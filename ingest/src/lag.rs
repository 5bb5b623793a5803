//! Consumer lag, the pure part: what one measurement of an assigned partition holds, the lag
//! it makes, and which gauges a measurement sets (revoked partitions go to 0, so the total
//! only counts what this worker owns). The measuring itself is [`crate::monitor`]'s.
//!
//! Definition: for each partition assigned to this worker,
//!
//! ```text
//! lag = high watermark − max(committed, low watermark)      (never below 0)
//! ```
//!
//! where `committed` is the group's committed offset (the next offset to read) as the group
//! coordinator reports it: the offset this worker committed last, or, before its first
//! commit, whatever the group had committed when the partition was assigned (by a previous
//! owner). A partition the group never committed is consumed from its low watermark
//! (`auto.offset.reset=earliest`), as is one whose committed offset fell below it (deleted
//! by retention): then `committed` counts as the low watermark. So the lag is what the group
//! would still have to read after a restart, and it is 0 once everything produced is
//! written and committed. It does not move with what the worker has merely fetched or
//! buffered: while writes are stuck it grows by every message produced.

use std::collections::BTreeSet;

use crate::source::TopicPartition;

/// One assigned partition in one measurement, as the broker reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartitionOffsets {
    pub(crate) source: TopicPartition,
    /// The first offset still in the log.
    pub(crate) low: i64,
    /// The high watermark: the offset the next produced message gets.
    pub(crate) high: i64,
    /// The group's committed offset; `None` when the group never committed one.
    pub(crate) committed: Option<i64>,
}

impl PartitionOffsets {
    /// The partition's lag (see the module doc).
    pub(crate) fn lag(&self) -> u64 {
        let resume = self.committed.unwrap_or(self.low).max(self.low);
        u64::try_from(self.high - resume).unwrap_or(0)
    }
}

/// The gauge values one measurement sets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct LagUpdate {
    /// Each measured partition with its lag, and each partition no longer assigned with 0.
    pub(crate) partitions: Vec<(TopicPartition, u64)>,
    /// The sum over the measured (assigned) partitions.
    pub(crate) total: u64,
}

/// Which partitions have a gauge, so that a revoked one is set to 0 (once).
#[derive(Debug, Default)]
pub(crate) struct LagBook {
    exported: BTreeSet<TopicPartition>,
}

impl LagBook {
    /// The gauges after measuring `assigned`, the complete current assignment.
    pub(crate) fn measured(&mut self, assigned: &[PartitionOffsets]) -> LagUpdate {
        let mut update = LagUpdate::default();
        let current: BTreeSet<TopicPartition> = assigned.iter().map(|p| p.source.clone()).collect();
        for revoked in self.exported.difference(&current) {
            update.partitions.push((revoked.clone(), 0));
        }
        for partition in assigned {
            let lag = partition.lag();
            update.total += lag;
            update.partitions.push((partition.source.clone(), lag));
        }
        self.exported = current;
        update
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(partition: i32, low: i64, high: i64, committed: Option<i64>) -> PartitionOffsets {
        PartitionOffsets {
            source: TopicPartition::new("logs", partition),
            low,
            high,
            committed,
        }
    }

    #[test]
    fn lag_is_the_high_watermark_minus_the_committed_offset() {
        assert_eq!(offsets(0, 0, 100, Some(40)).lag(), 60);
        assert_eq!(offsets(0, 0, 100, Some(100)).lag(), 0);
        assert_eq!(offsets(0, 0, 0, Some(0)).lag(), 0);
    }

    #[test]
    fn without_a_committed_offset_the_group_starts_at_the_low_watermark() {
        assert_eq!(offsets(0, 0, 100, None).lag(), 100);
        assert_eq!(offsets(0, 30, 100, None).lag(), 70);
        assert_eq!(offsets(0, 0, 0, None).lag(), 0);
    }

    #[test]
    fn a_committed_offset_below_the_log_counts_from_the_low_watermark() {
        assert_eq!(offsets(0, 50, 100, Some(10)).lag(), 50);
    }

    #[test]
    fn a_committed_offset_past_the_high_watermark_is_no_negative_lag() {
        // A measurement that read the watermark before a commit it then saw.
        assert_eq!(offsets(0, 0, 100, Some(120)).lag(), 0);
    }

    #[test]
    fn the_total_counts_the_assigned_partitions_and_revoked_ones_go_to_zero() {
        let mut book = LagBook::default();
        let first = book.measured(&[offsets(0, 0, 10, Some(4)), offsets(1, 0, 5, None)]);
        assert_eq!(first.total, 11);
        assert_eq!(
            first.partitions,
            vec![
                (TopicPartition::new("logs", 0), 6),
                (TopicPartition::new("logs", 1), 5),
            ]
        );

        // Partition 1 revoked, 2 assigned: 1 is zeroed once, then forgotten.
        let second = book.measured(&[offsets(0, 0, 12, Some(12)), offsets(2, 0, 3, Some(1))]);
        assert_eq!(second.total, 2);
        assert_eq!(
            second.partitions,
            vec![
                (TopicPartition::new("logs", 1), 0),
                (TopicPartition::new("logs", 0), 0),
                (TopicPartition::new("logs", 2), 2),
            ]
        );
        let third = book.measured(&[offsets(0, 0, 12, Some(12)), offsets(2, 0, 3, Some(3))]);
        assert_eq!(third.total, 0);
        assert_eq!(third.partitions.len(), 2);

        // Everything revoked: every gauge goes to 0, and so does the total.
        let none = book.measured(&[]);
        assert_eq!(none.total, 0);
        assert_eq!(
            none.partitions,
            vec![
                (TopicPartition::new("logs", 0), 0),
                (TopicPartition::new("logs", 2), 0),
            ]
        );
        assert_eq!(book.measured(&[]), LagUpdate::default());
    }
}
