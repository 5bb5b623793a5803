//! Where the bridge is in `logs`, pure: the highest id read, and the gaps below it that may
//! still fill. An auto-increment id is taken when a transaction inserts, but the row becomes
//! visible only when it commits; so id 101 can be visible while 100 is not yet. A gap is
//! re-read until it is `--late-row-window-secs` old; rows deleted or rolled back leave gaps
//! that never fill, and those are given up after the window.

use serde::{Deserialize, Serialize};

/// At most this many gaps are tracked; beyond it the oldest are given up first (a source
/// that leaves this many holes within one window is deleting rows, not committing late).
pub const MAX_GAPS: usize = 10_000;

/// Ids `from..=to`, missing since `first_seen` (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub from: i64,
    pub to: i64,
    pub first_seen: i64,
}

impl Gap {
    pub fn ids(&self) -> u64 {
        (self.to - self.from + 1) as u64
    }
}

/// The position in `logs`: every id up to `high` has been read, except the open `gaps`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCursor {
    pub high: i64,
    #[serde(default)]
    pub gaps: Vec<Gap>,
}

impl LogCursor {
    /// Takes the ids (ascending, each above `high`) of a batch read at `now`: the holes
    /// between them become gaps, and `high` the last id.
    pub fn advance(&mut self, ids: &[i64], now: i64) {
        for &id in ids {
            debug_assert!(id > self.high, "ids come in ascending order above high");
            if id > self.high + 1 {
                self.gaps.push(Gap {
                    from: self.high + 1,
                    to: id - 1,
                    first_seen: now,
                });
            }
            self.high = self.high.max(id);
        }
        if self.gaps.len() > MAX_GAPS {
            self.gaps.sort_by_key(|g| (g.first_seen, g.from));
            self.gaps.drain(..self.gaps.len() - MAX_GAPS);
            self.gaps.sort_by_key(|g| g.from);
        }
    }

    /// A row found inside a gap (it committed late): the gap shrinks or splits around it.
    /// Returns whether `id` was in a gap.
    pub fn fill(&mut self, id: i64) -> bool {
        let Some(index) = self.gaps.iter().position(|g| g.from <= id && id <= g.to) else {
            return false;
        };
        let gap = self.gaps.remove(index);
        if gap.from < id {
            self.gaps.push(Gap { to: id - 1, ..gap });
        }
        if id < gap.to {
            self.gaps.push(Gap {
                from: id + 1,
                ..gap
            });
        }
        self.gaps.sort_by_key(|g| g.from);
        true
    }

    /// Gives up the gaps older than `window_secs` at `now`; returns them.
    pub fn expire(&mut self, now: i64, window_secs: i64) -> Vec<Gap> {
        let (expired, open) = self
            .gaps
            .iter()
            .partition(|g| now - g.first_seen >= window_secs);
        self.gaps = open;
        expired
    }

    /// The open gaps as `(from, to)` id ranges, in chunks of at most `per_query`.
    pub fn gap_ranges(&self, per_query: usize) -> Vec<Vec<(i64, i64)>> {
        let ranges: Vec<(i64, i64)> = self.gaps.iter().map(|g| (g.from, g.to)).collect();
        ranges
            .chunks(per_query.max(1))
            .map(<[(i64, i64)]>::to_vec)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_between_read_ids_become_gaps() {
        let mut cursor = LogCursor::default();
        cursor.advance(&[1, 2, 5, 6, 9], 100);
        assert_eq!(cursor.high, 9);
        assert_eq!(
            cursor.gaps,
            vec![
                Gap {
                    from: 3,
                    to: 4,
                    first_seen: 100
                },
                Gap {
                    from: 7,
                    to: 8,
                    first_seen: 100
                }
            ]
        );
        cursor.advance(&[12], 101);
        assert_eq!(
            cursor.gaps[2],
            Gap {
                from: 10,
                to: 11,
                first_seen: 101
            }
        );
        assert_eq!(
            cursor.gap_ranges(2),
            vec![vec![(3, 4), (7, 8)], vec![(10, 11)]]
        );
    }

    #[test]
    fn a_late_row_splits_its_gap() {
        let mut cursor = LogCursor::default();
        cursor.advance(&[1, 10], 100);
        assert!(cursor.fill(5));
        assert!(!cursor.fill(5));
        assert!(!cursor.fill(10));
        assert_eq!(cursor.gap_ranges(10), vec![vec![(2, 4), (6, 9)]]);
        assert!(cursor.fill(2) && cursor.fill(9));
        assert_eq!(cursor.gap_ranges(10), vec![vec![(3, 4), (6, 8)]]);
        assert!(cursor.fill(3) && cursor.fill(4));
        assert_eq!(cursor.gap_ranges(10), vec![vec![(6, 8)]]);
    }

    #[test]
    fn gaps_are_given_up_after_the_window() {
        let mut cursor = LogCursor::default();
        cursor.advance(&[3], 100);
        cursor.advance(&[6], 150);
        let expired = cursor.expire(200, 60);
        assert_eq!(expired.len(), 1);
        assert_eq!(
            (expired[0].from, expired[0].to, expired[0].ids()),
            (1, 2, 2)
        );
        assert_eq!(cursor.gap_ranges(10), vec![vec![(4, 5)]]);
        assert_eq!(
            cursor.expire(210, 60),
            vec![Gap {
                from: 4,
                to: 5,
                first_seen: 150
            }]
        );
        assert!(cursor.gaps.is_empty());
        assert!(cursor.gap_ranges(10).is_empty());
    }

    #[test]
    fn too_many_gaps_drop_the_oldest() {
        let mut cursor = LogCursor::default();
        let ids: Vec<i64> = (1..=MAX_GAPS as i64 + 5).map(|i| i * 2).collect();
        cursor.advance(&ids[..10], 1);
        cursor.advance(&ids[10..], 2);
        assert_eq!(cursor.gaps.len(), MAX_GAPS);
        assert!(cursor.gaps.iter().filter(|g| g.first_seen == 1).count() == 5);
    }

    #[test]
    fn the_cursor_round_trips_through_json() {
        let mut cursor = LogCursor::default();
        cursor.advance(&[2, 4], 7);
        let json = serde_json::to_string(&cursor).expect("serializes");
        assert_eq!(
            serde_json::from_str::<LogCursor>(&json).expect("parses"),
            cursor
        );
        let old: LogCursor = serde_json::from_str(r#"{"high":5}"#).expect("parses");
        assert_eq!((old.high, old.gaps.len()), (5, 0));
    }
}
