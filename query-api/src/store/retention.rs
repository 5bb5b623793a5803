//! The retention delete (`DELETE /api/log/`): under the cross-replica lock, run the steps of
//! [`super::retention_plan`] (drop whole days, delete the boundary day's rows, rebuild and check
//! the cut minute of the rollup), and report a failure part-way with what it left.

use logbus_projections::schema::{MINUTE_ROLLUP_COLUMNS, minute_rollup_select};
use logbus_projections::tables;

use super::retention_plan::{Step, inconsistencies, plan};
use super::{MINUTE, Store};
use crate::error::{ApiError, DbError, DeleteIncomplete, Failure};
use crate::sql::{Conditions, Value};

/// How many times the cut minute is rebuilt before a persisting difference is reported.
const REBUILD_ATTEMPTS: usize = 3;

impl Store {
    /// How many logs have `created_at < target` (the dry run, and the count a delete returns).
    pub async fn count_before(&self, target: u32) -> Result<u64, DbError> {
        let mut count = Conditions::default();
        count.compare("created_at", "<", Value::I64(i64::from(target)));
        let sql = format!(
            "SELECT count() FROM {} {}",
            tables::LOGS,
            count.where_clause()
        );
        self.timed(
            "retention_count",
            self.query(&sql, &count).fetch_one::<u64>(),
        )
        .await
    }

    /// Deletes every log with `created_at < target` from `logs` and `logs_minute` and returns
    /// how many log rows that was; 409 when another delete holds the lock. See docs/api.md.
    pub async fn delete_before(&self, target: u32, admin_id: i64) -> Result<u64, ApiError> {
        let db = ApiError::db(Failure::Delete);
        let mut lease = match self
            .claim_retention_lock(target, admin_id)
            .await
            .map_err(db)?
        {
            Ok(lease) => lease,
            Err(busy) => return Err(busy.into()),
        };
        let outcome = self.delete_under_lock(target, &mut lease).await;
        self.release_retention_lock(lease).await;
        outcome
    }

    async fn delete_under_lock(
        &self,
        target: u32,
        lease: &mut super::retention_lock::Lease,
    ) -> Result<u64, ApiError> {
        let db = || ApiError::db(Failure::Delete);
        let deleted = self.count_before(target).await.map_err(db())?;
        let logs = self.partitions(tables::LOGS).await.map_err(db())?;
        let rollup = self.partitions(tables::LOGS_MINUTE).await.map_err(db())?;
        let steps = plan(i64::from(target), &logs, &rollup);
        for (index, step) in steps.iter().enumerate() {
            let result = match self.renew_retention_lock(lease).await {
                Ok(()) => self.run(step).await,
                Err(error) => Err(StepError::Db(error)),
            };
            if let Err(error) = result {
                let describe = |s: &[Step]| s.iter().map(Step::describe).collect::<Vec<_>>();
                let (failed, source) = match error {
                    StepError::Db(e) => (step.describe(), Some(e)),
                    StepError::StillDiffers => (
                        format!(
                            "{}: still differs from the logs after {REBUILD_ATTEMPTS} rebuilds",
                            step.describe()
                        ),
                        None,
                    ),
                };
                return Err(DeleteIncomplete {
                    done: describe(&steps[..index]),
                    failed,
                    not_done: describe(&steps[index + 1..]),
                    inconsistent: inconsistencies(&steps, index),
                    source,
                }
                .into());
            }
        }
        Ok(deleted)
    }

    async fn run(&self, step: &Step) -> Result<(), StepError> {
        match step {
            Step::DropPartition { table, partition } => {
                let sql = format!("ALTER TABLE {table} DROP PARTITION ID {{partition:String}}");
                let query = self
                    .writer
                    .query(&sql)
                    .param("partition", partition.as_str());
                self.timed("retention_drop_partition", query.execute())
                    .await?;
            }
            Step::DeleteRaw { from, to } => {
                self.delete_range(tables::LOGS, "created_at", *from, *to)
                    .await?
            }
            Step::DeleteRollup { from, to } => {
                self.delete_range(tables::LOGS_MINUTE, "minute", *from, *to)
                    .await?
            }
            Step::RebuildMinute { minute } => {
                // A late event for this minute ingested between the delete and the rebuild is
                // counted twice (by the view and by the rebuild): the check finds it and the
                // minute is rebuilt again.
                for _ in 0..REBUILD_ATTEMPTS {
                    self.rebuild_minute(*minute).await?;
                    if self.minute_matches(*minute).await? {
                        return Ok(());
                    }
                    tracing::warn!(minute, "rebuilt rollup minute differs from the logs; again");
                }
                return Err(StepError::StillDiffers);
            }
        }
        Ok(())
    }

    async fn delete_range(
        &self,
        table: &str,
        column: &str,
        from: i64,
        to: i64,
    ) -> Result<(), DbError> {
        let mut range = Conditions::default();
        range.compare(column, ">=", Value::I64(from));
        range.compare(column, "<", Value::I64(to));
        let sql = format!("DELETE FROM {table} {}", range.where_clause());
        self.timed("retention_delete", self.write(&sql, &range).execute())
            .await
    }

    /// Deletes the rollup rows of `minute` and inserts them again from the logs that remain.
    async fn rebuild_minute(&self, minute: i64) -> Result<(), DbError> {
        self.delete_range(tables::LOGS_MINUTE, "minute", minute, minute + MINUTE)
            .await?;
        let mut raw = Conditions::default();
        raw.compare("created_at", ">=", Value::I64(minute));
        raw.compare("created_at", "<", Value::I64(minute + MINUTE));
        let sql = format!(
            "INSERT INTO {} ({MINUTE_ROLLUP_COLUMNS}) {}",
            tables::LOGS_MINUTE,
            minute_rollup_select(&raw.where_clause())
        );
        // A rebuilt block may equal an earlier one byte for byte: it must not be dropped as a
        // duplicate insert.
        let query = self
            .write(&sql, &raw)
            .with_setting("insert_deduplicate", "0");
        self.timed("retention_rebuild_minute", query.execute())
            .await
    }

    /// Whether the rollup totals of `minute` equal those of its logs.
    async fn minute_matches(&self, minute: i64) -> Result<bool, DbError> {
        let mut c = Conditions::default();
        let start = c.bind(Value::I64(minute));
        let end = c.bind(Value::I64(minute + MINUTE));
        let sql = format!(
            // Scalar subqueries are Nullable; an aggregate without GROUP BY always has a row.
            "SELECT toUInt8(ifNull((SELECT tuple(sum(requests), sum(quota), \
                            sum(prompt_tokens), sum(completion_tokens)) \
                     FROM {rollup} WHERE minute >= {start} AND minute < {end}) \
                  = (SELECT tuple(toUInt64(count()), sum(quota), sum(prompt_tokens), \
                            sum(completion_tokens)) \
                     FROM {logs} WHERE created_at >= {start} AND created_at < {end}), 0))",
            rollup = tables::LOGS_MINUTE,
            logs = tables::LOGS,
        );
        let same = self
            .timed(
                "retention_check_minute",
                self.query(&sql, &c).fetch_one::<u8>(),
            )
            .await?;
        Ok(same == 1)
    }

    /// The active partition ids of `table`.
    async fn partitions(&self, table: &str) -> Result<Vec<String>, DbError> {
        let query = self
            .client
            .query(
                "SELECT DISTINCT partition_id FROM system.parts \
                 WHERE database = currentDatabase() AND table = {table:String} AND active",
            )
            .param("table", table);
        self.timed("retention_partitions", query.fetch_all::<String>())
            .await
    }
}

/// Why a step failed.
#[derive(Debug)]
enum StepError {
    Db(DbError),
    /// The rebuilt cut minute kept disagreeing with its logs.
    StillDiffers,
}

impl From<DbError> for StepError {
    fn from(error: DbError) -> Self {
        StepError::Db(error)
    }
}
