//! Replay planning, pure: the intents a partition's previous owner recorded beyond the
//! resume offset, and the rules that cut a replay at exactly their boundaries (docs/ingest.md,
//! "Deterministic batches"): when a message starts a planned batch, when the open batch must
//! be cut before a message, and what a truncated log (a replay that starts inside a recorded
//! batch) does. Loading the intents is the consume loop's job ([`crate::store`]).

use std::collections::VecDeque;

use logbus_projections::rows::Intent;

use crate::batch::Batch;

/// The recorded batches of one partition still ahead of the consumer, in offset order.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    intents: VecDeque<Intent>,
}

/// What the message that opens a batch means for the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Start {
    /// No recorded batch covers the offset: an ordinary batch.
    Unplanned,
    /// The message is the first of this recorded batch: replay it at its boundaries.
    Planned(Intent),
    /// The offset lies inside a recorded batch but is not its first (only possible if the log
    /// was truncated): its boundaries cannot be reproduced, so the intent is dropped and the
    /// event-id filter keeps the replay free of duplicates.
    InsideRecorded { intent_first: i64 },
}

impl Plan {
    /// The plan of `intents`, ordered by first offset and not overlapping (as
    /// [`crate::store::Store::load_intents`] returns them).
    pub(crate) fn new(intents: Vec<Intent>) -> Self {
        Self {
            intents: intents.into(),
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.intents.len()
    }

    /// Called before the message at `offset` is added to `batch`: forgets the intents that
    /// end before it, and says whether the open batch must be cut first (a planned batch
    /// past its recorded end, an unplanned one reaching the next recorded batch).
    pub(crate) fn must_cut_before(&mut self, batch: &Batch, offset: i64) -> bool {
        while self
            .intents
            .front()
            .is_some_and(|intent| intent.last_offset < offset)
        {
            self.intents.pop_front();
        }
        !batch.is_empty()
            && match &batch.planned {
                Some(intent) => offset > intent.last_offset,
                None => self
                    .intents
                    .front()
                    .is_some_and(|intent| offset >= intent.first_offset),
            }
    }

    /// Called when the message at `offset` opens a new batch.
    pub(crate) fn start(&mut self, offset: i64) -> Start {
        let Some(intent) = self.intents.front() else {
            return Start::Unplanned;
        };
        if !(intent.first_offset <= offset && offset <= intent.last_offset) {
            return Start::Unplanned;
        }
        if intent.first_offset == offset {
            return Start::Planned(intent.clone());
        }
        let intent_first = intent.first_offset;
        self.intents.pop_front();
        Start::InsideRecorded { intent_first }
    }

    /// Called when `batch` is handed to a writer: a planned batch's intent is done.
    pub(crate) fn flushed(&mut self, batch: &Batch) {
        if let Some(intent) = &batch.planned
            && self
                .intents
                .front()
                .is_some_and(|next| next.first_offset == intent.first_offset)
        {
            self.intents.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::batch::tests::{EVENT, limits, message};
    use crate::source::{Kind, TopicPartition};

    fn intent(first_offset: i64, last_offset: i64) -> Intent {
        Intent {
            consumer_group: "g".into(),
            topic: "gateway.logs".into(),
            partition: 0,
            first_offset,
            last_offset,
            batch_id: first_offset as u64,
            rows: (last_offset - first_offset + 1) as u32,
        }
    }

    /// Feeds offsets `from..to` through the plan as the consume loop does, and returns the
    /// batches cut (first offset, last offset, planned).
    fn replay(plan: &mut Plan, from: i64, to: i64) -> Vec<(i64, i64, bool)> {
        let source = TopicPartition::new("gateway.logs", 0);
        let mut limits = limits();
        limits.max_rows = 1_000;
        let mut cut = Vec::new();
        let mut batch = Batch::default();
        let mut flush = |batch: &mut Batch, plan: &mut Plan| {
            let done = std::mem::take(batch);
            plan.flushed(&done);
            cut.push((done.first_offset, done.last_offset, done.planned.is_some()));
        };
        for offset in from..to {
            if plan.must_cut_before(&batch, offset) {
                flush(&mut batch, plan);
            }
            let planned = if batch.is_empty() {
                match plan.start(offset) {
                    Start::Planned(intent) => Some(intent),
                    _ => None,
                }
            } else {
                None
            };
            let message = message(offset, EVENT);
            batch.add(
                &source,
                Kind::Logs,
                message,
                planned,
                &limits,
                Instant::now(),
            );
            if batch.is_full(&limits) {
                flush(&mut batch, plan);
            }
        }
        if !batch.is_empty() {
            flush(&mut batch, plan);
        }
        cut
    }

    #[test]
    fn a_replay_reproduces_the_recorded_boundaries() {
        let mut plan = Plan::new(vec![intent(10, 14), intent(15, 15), intent(20, 24)]);
        let cut = replay(&mut plan, 10, 27);
        assert_eq!(
            cut,
            [
                (10, 14, true),
                (15, 15, true),
                (16, 19, false),
                (20, 24, true),
                (25, 26, false)
            ]
        );
        assert_eq!(plan.len(), 0);
    }

    #[test]
    fn intents_behind_the_resume_offset_are_forgotten() {
        let mut plan = Plan::new(vec![intent(0, 4), intent(5, 9)]);
        let cut = replay(&mut plan, 5, 12);
        assert_eq!(cut, [(5, 9, true), (10, 11, false)]);
    }

    #[test]
    fn a_truncated_log_drops_the_intent_it_starts_inside() {
        let mut plan = Plan::new(vec![intent(10, 19), intent(20, 21)]);
        assert_eq!(plan.start(13), Start::InsideRecorded { intent_first: 10 });
        assert_eq!(plan.len(), 1);
        let mut plan = Plan::new(vec![intent(10, 19), intent(20, 21)]);
        let cut = replay(&mut plan, 13, 22);
        assert_eq!(cut, [(13, 19, false), (20, 21, true)]);
    }

    #[test]
    fn no_intents_no_plan() {
        let mut plan = Plan::default();
        assert_eq!(plan.start(0), Start::Unplanned);
        assert_eq!(replay(&mut plan, 0, 3), [(0, 2, false)]);
    }
}
