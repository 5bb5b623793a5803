//! The plan of a retention delete (pure, no I/O): which statements run in which order, how each
//! is described to the caller, and what a failure part-way leaves inconsistent.
//!
//! Order matters for a failure: each whole day is dropped from `logs` and then from
//! `logs_minute` before the next day, so a failure leaves at most one day (or the boundary
//! range, or the cut minute) where the rollup and the raw rows disagree, and the plan names it.
//! Every step is idempotent and a repeated delete plans again from what is left, so repeating
//! the same delete completes an interrupted one.

use logbus_projections::{partition_id, tables};

use super::{DAY, MINUTE};

/// One statement (or, for [`Step::RebuildMinute`], one checked rebuild) of a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `ALTER TABLE <table> DROP PARTITION ID <partition>`: a whole UTC day.
    DropPartition {
        table: &'static str,
        partition: String,
    },
    /// Lightweight delete of the raw rows with `from <= created_at < to`.
    DeleteRaw { from: i64, to: i64 },
    /// Lightweight delete of the rollup minutes `from <= minute < to`.
    DeleteRollup { from: i64, to: i64 },
    /// The cut falls inside `minute`: its rollup rows are deleted and rebuilt from the raw rows
    /// that remain, then checked against them.
    RebuildMinute { minute: i64 },
}

impl Step {
    /// What the step does, as the caller is told when a delete stops part-way.
    pub fn describe(&self) -> String {
        match self {
            Step::DropPartition { table, partition } => {
                format!("{table} DROP PARTITION {partition}")
            }
            Step::DeleteRaw { from, to } => {
                format!("{} DELETE created_at in [{from}, {to})", tables::LOGS)
            }
            Step::DeleteRollup { from, to } => {
                format!("{} DELETE minute in [{from}, {to})", tables::LOGS_MINUTE)
            }
            Step::RebuildMinute { minute } => {
                format!("{} REBUILD minute {minute}", tables::LOGS_MINUTE)
            }
        }
    }
}

/// The steps that delete every log with `created_at < target`, given the `YYYYMMDD` partitions
/// that exist in `logs` and in `logs_minute` (others than whole days before the cut are
/// ignored).
pub fn plan(target: i64, logs_partitions: &[String], rollup_partitions: &[String]) -> Vec<Step> {
    let day_start = target - target.rem_euclid(DAY);
    let minute_start = target - target.rem_euclid(MINUTE);
    let boundary_day = partition_id(day_start);
    let days = |partitions: &[String]| -> Vec<u32> {
        partitions
            .iter()
            .filter(|p| p.len() == 8 && p.bytes().all(|b| b.is_ascii_digit()))
            .filter_map(|p| p.parse::<u32>().ok())
            .filter(|day| *day < boundary_day)
            .collect()
    };
    let (raw_days, rollup_days) = (days(logs_partitions), days(rollup_partitions));
    let mut all_days: Vec<u32> = raw_days.iter().chain(&rollup_days).copied().collect();
    all_days.sort_unstable();
    all_days.dedup();

    let mut steps = Vec::new();
    for day in all_days {
        for (table, present) in [
            (tables::LOGS, &raw_days),
            (tables::LOGS_MINUTE, &rollup_days),
        ] {
            if present.contains(&day) {
                steps.push(Step::DropPartition {
                    table,
                    partition: day.to_string(),
                });
            }
        }
    }
    if target > day_start {
        steps.push(Step::DeleteRaw {
            from: day_start,
            to: target,
        });
        if minute_start > day_start {
            steps.push(Step::DeleteRollup {
                from: day_start,
                to: minute_start,
            });
        }
        if target > minute_start {
            steps.push(Step::RebuildMinute {
                minute: minute_start,
            });
        }
    }
    steps
}

/// What reads get wrong after `steps[..failed]` ran and `steps[failed]` failed (and may or may
/// not have taken effect): the rollup of a range whose raw rows are gone, or a cut minute
/// whose rollup rows are gone but not yet rebuilt.
pub fn inconsistencies(steps: &[Step], failed: usize) -> Vec<String> {
    let attempted = &steps[..=failed.min(steps.len().saturating_sub(1))];
    let done = &steps[..failed.min(steps.len())];
    let mut problems = Vec::new();
    for step in attempted {
        match step {
            Step::DropPartition { table, partition } if *table == tables::LOGS => {
                let rollup = Step::DropPartition {
                    table: tables::LOGS_MINUTE,
                    partition: partition.clone(),
                };
                if steps.contains(&rollup) && !done.contains(&rollup) {
                    problems.push(format!(
                        "{} still counts the deleted logs of day {partition}",
                        tables::LOGS_MINUTE
                    ));
                }
            }
            Step::DeleteRaw { from, to } => {
                let rollup_done = steps
                    .iter()
                    .filter(|s| matches!(s, Step::DeleteRollup { .. } | Step::RebuildMinute { .. }))
                    .all(|s| done.contains(s));
                if !rollup_done {
                    problems.push(format!(
                        "{} may still count deleted logs with created_at in [{from}, {to})",
                        tables::LOGS_MINUTE
                    ));
                }
            }
            Step::RebuildMinute { minute } if !done.contains(step) => {
                problems.push(format!(
                    "{} may disagree with the logs of minute {minute}",
                    tables::LOGS_MINUTE
                ));
            }
            _ => {}
        }
    }
    problems.dedup();
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2023-11-16 00:00:00 UTC.
    const DAY3: i64 = 1_700_092_800;

    fn parts(days: &[&str]) -> Vec<String> {
        days.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn whole_days_then_the_boundary_day_then_the_cut_minute() {
        let target = DAY3 + 3690;
        let steps = plan(
            target,
            &parts(&["20231114", "20231115", "20231116", "20231117", "all"]),
            &parts(&["20231115", "20231116"]),
        );
        assert_eq!(
            steps,
            vec![
                Step::DropPartition {
                    table: "logs",
                    partition: "20231114".into()
                },
                Step::DropPartition {
                    table: "logs",
                    partition: "20231115".into()
                },
                Step::DropPartition {
                    table: "logs_minute",
                    partition: "20231115".into()
                },
                Step::DeleteRaw {
                    from: DAY3,
                    to: target
                },
                Step::DeleteRollup {
                    from: DAY3,
                    to: DAY3 + 3660
                },
                Step::RebuildMinute {
                    minute: DAY3 + 3660
                },
            ]
        );
    }

    #[test]
    fn aligned_cuts_need_no_rebuild_and_a_day_cut_only_drops() {
        let minute = plan(DAY3 + 120, &[], &[]);
        assert_eq!(
            minute,
            vec![
                Step::DeleteRaw {
                    from: DAY3,
                    to: DAY3 + 120
                },
                Step::DeleteRollup {
                    from: DAY3,
                    to: DAY3 + 120
                }
            ]
        );
        assert_eq!(
            plan(DAY3 + 30, &[], &[]),
            vec![
                Step::DeleteRaw {
                    from: DAY3,
                    to: DAY3 + 30
                },
                Step::RebuildMinute { minute: DAY3 }
            ]
        );
        let day = plan(DAY3, &parts(&["20231115", "20231116"]), &[]);
        assert_eq!(day.len(), 1, "{day:?}");
    }

    #[test]
    fn a_failure_names_what_disagrees() {
        let target = DAY3 + 3690;
        let steps = plan(target, &parts(&["20231115"]), &parts(&["20231115"]));
        assert_eq!(steps.len(), 5);
        // The rollup drop of 20231115 failed after the raw drop.
        assert_eq!(
            inconsistencies(&steps, 1),
            vec!["logs_minute still counts the deleted logs of day 20231115".to_owned()]
        );
        // The very first step failed: it may have dropped the raw day.
        assert_eq!(inconsistencies(&steps, 0).len(), 1);
        // The raw delete of the boundary day failed: the rollup may count what it removed.
        let problems = inconsistencies(&steps, 2);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains(&format!("[{DAY3}, {target})")));
        // The rebuild failed: the raw range is deleted, the cut minute may disagree.
        let problems = inconsistencies(&steps, 4);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[1].contains(&format!("minute {}", DAY3 + 3660)));
    }
}
