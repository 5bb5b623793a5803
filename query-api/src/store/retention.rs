//! The retention delete (`DELETE /api/log/`): drop whole days, delete the boundary day's rows
//! and rebuild the cut minute of the rollup with the materialized view's own SELECT.

use logbus_projections::schema::{MINUTE_ROLLUP_COLUMNS, minute_rollup_select};
use logbus_projections::{partition_id, tables};

use super::{DAY, MINUTE, Store};
use crate::error::DbError;
use crate::sql::{Conditions, Value};

impl Store {
    /// Deletes every log with `created_at < target` from `logs` and `logs_minute`, and
    /// returns how many log rows that was. See docs/api.md for the staging.
    pub async fn delete_before(&self, target: u32) -> Result<u64, DbError> {
        let target = i64::from(target);
        let day_start = target - target.rem_euclid(DAY);
        let minute_start = target - target.rem_euclid(MINUTE);
        let boundary_day = partition_id(day_start);

        let mut count = Conditions::default();
        count.compare("created_at", "<", Value::I64(target));
        let deleted = self
            .timed(
                self.query(
                    &format!(
                        "SELECT count() FROM {} {}",
                        tables::LOGS,
                        count.where_clause()
                    ),
                    &count,
                )
                .fetch_one::<u64>(),
            )
            .await?;

        // 1. Whole UTC days before the boundary day: drop their partitions (metadata only).
        for table in [tables::LOGS, tables::LOGS_MINUTE] {
            for partition in self.partitions_before(table, boundary_day).await? {
                let sql = format!("ALTER TABLE {table} DROP PARTITION ID {{partition:String}}");
                self.timed(
                    self.client
                        .query(&sql)
                        .param("partition", partition.as_str())
                        .execute(),
                )
                .await?;
            }
        }

        // 2. The boundary day, raw rows: a lightweight delete of [day_start, target).
        if target > day_start {
            let mut raw = Conditions::default();
            raw.compare("created_at", ">=", Value::I64(day_start));
            raw.compare("created_at", "<", Value::I64(target));
            let sql = format!("DELETE FROM {} {}", tables::LOGS, raw.where_clause());
            self.timed(self.query(&sql, &raw).execute()).await?;
        }

        // 3. The boundary day, rollups: drop the minutes below the cut, and when the cut falls
        //    inside a minute, rebuild that minute from the raw rows that remain.
        let recompute = target > minute_start;
        if target > day_start {
            let mut rollup = Conditions::default();
            rollup.compare("minute", ">=", Value::I64(day_start));
            rollup.compare(
                "minute",
                if recompute { "<=" } else { "<" },
                Value::I64(minute_start),
            );
            let sql = format!(
                "DELETE FROM {} {}",
                tables::LOGS_MINUTE,
                rollup.where_clause()
            );
            self.timed(self.query(&sql, &rollup).execute()).await?;
        }
        if recompute {
            let mut minute = Conditions::default();
            minute.compare("created_at", ">=", Value::I64(minute_start));
            minute.compare("created_at", "<", Value::I64(minute_start + MINUTE));
            let sql = format!(
                "INSERT INTO {} ({MINUTE_ROLLUP_COLUMNS}) {}",
                tables::LOGS_MINUTE,
                minute_rollup_select(&minute.where_clause())
            );
            // A rebuilt block may equal an earlier one byte for byte: it must not be dropped
            // as a duplicate insert.
            self.timed(
                self.query(&sql, &minute)
                    .with_setting("insert_deduplicate", "0")
                    .execute(),
            )
            .await?;
        }
        Ok(deleted)
    }

    async fn partitions_before(
        &self,
        table: &str,
        boundary_day: u32,
    ) -> Result<Vec<String>, DbError> {
        let partitions = self
            .timed(
                self.client
                    .query(
                        "SELECT DISTINCT partition_id FROM system.parts \
                         WHERE database = currentDatabase() AND table = {table:String} AND active",
                    )
                    .param("table", table)
                    .fetch_all::<String>(),
            )
            .await?;
        Ok(partitions
            .into_iter()
            .filter(|p| p.len() == 8 && p.bytes().all(|b| b.is_ascii_digit()))
            .filter(|p| p.parse::<u32>().is_ok_and(|day| day < boundary_day))
            .collect())
    }
}
