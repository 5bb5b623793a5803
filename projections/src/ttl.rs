//! Automatic retention: how long `logs` and `logs_minute` keep their rows, applied as
//! ClickHouse TTLs that drop whole day partitions (migration 10 sets `ttl_only_drop_parts`).
//!
//! The worker applies the configured retention at every start. [`plan`] compares it with the
//! TTL the table has (as ClickHouse reports it in `system.tables.engine_full`) and says which
//! statement, if any, brings the table there: restarting with the same value changes nothing
//! (a `MODIFY TTL` re-checks every part, so it is not sent needlessly); another value is one
//! `MODIFY TTL`; 0 is a `REMOVE TTL`. [`apply`] runs the plan.

use clickhouse::Client;

use crate::{Cluster, Result, tables};

/// Days of raw logs kept by default.
pub const DEFAULT_RAW_DAYS: u32 = 90;
/// Days of the minute rollup kept by default (beyond a year, for year-on-year dashboards).
pub const DEFAULT_ROLLUP_DAYS: u32 = 400;

/// Days each table keeps its rows (0: for ever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw_days: u32,
    pub rollup_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            raw_days: DEFAULT_RAW_DAYS,
            rollup_days: DEFAULT_ROLLUP_DAYS,
        }
    }
}

/// A table with a retention and the time column its TTL counts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainedTable {
    pub table: &'static str,
    pub column: &'static str,
}

pub const RAW: RetainedTable = RetainedTable {
    table: tables::LOGS,
    column: "created_at",
};
pub const ROLLUP: RetainedTable = RetainedTable {
    table: tables::LOGS_MINUTE,
    column: "minute",
};

impl Retention {
    /// Each retained table with its days.
    pub fn tables(&self) -> [(RetainedTable, u32); 2] {
        [(RAW, self.raw_days), (ROLLUP, self.rollup_days)]
    }
}

/// The TTL expression of `days` on `column`, spelled as ClickHouse normalises it.
fn expression(column: &str, days: u32) -> String {
    format!("{column} + toIntervalDay({days})")
}

/// The table TTL in an `engine_full`, if any: what follows ` TTL ` up to ` SETTINGS `.
pub fn current_ttl(engine_full: &str) -> Option<&str> {
    let (_, after) = engine_full.split_once(" TTL ")?;
    let ttl = after.split_once(" SETTINGS ").map_or(after, |(ttl, _)| ttl);
    Some(ttl.trim())
}

/// The statement that gives `table` a retention of `days` (0: none), given its current
/// `engine_full`; `None` when it already has it.
pub fn plan(table: RetainedTable, days: u32, engine_full: &str) -> Option<String> {
    let current = current_ttl(engine_full);
    let RetainedTable { table, column } = table;
    match (days, current) {
        (0, None) => None,
        (0, Some(_)) => Some(format!("ALTER TABLE {table} REMOVE TTL")),
        (days, Some(current)) if current == expression(column, days) => None,
        (days, _) => Some(format!(
            "ALTER TABLE {table} MODIFY TTL {column} + INTERVAL {days} DAY"
        )),
    }
}

/// Brings `database`'s tables to `retention`; returns the statements it ran (none when they
/// already had it). The TTL is checked against existing parts in the background (a mutation):
/// this returns without waiting for it.
///
/// On a `cluster` the TTL belongs to each shard's storage table (`logs_local`: a Distributed
/// table has none), changed `ON CLUSTER`.
pub async fn apply(
    client: &Client,
    retention: &Retention,
    cluster: Option<&Cluster>,
) -> Result<Vec<String>> {
    let mut applied = Vec::new();
    for (table, days) in retention.tables() {
        let stored = match cluster {
            Some(_) => crate::cluster::storage_table(table.table),
            None => table.table.to_owned(),
        };
        let engine_full = client
            .query("SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = ?")
            .bind(stored.as_str())
            .fetch_one::<String>()
            .await?;
        if let Some(statement) = plan(table, days, &engine_full) {
            let statement = match cluster {
                Some(cluster) => crate::cluster::alter_on_cluster(&statement, cluster)?,
                None => statement,
            };
            client.query(&statement).execute().await?;
            tracing::info!(table = table.table, days, %statement, "retention applied");
            applied.push(statement);
        }
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARE: &str = "MergeTree PARTITION BY toYYYYMMDD(created_at) ORDER BY (created_at, \
        event_id) SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1";
    const WITH_90: &str = "MergeTree PARTITION BY toYYYYMMDD(created_at) ORDER BY (created_at, \
        event_id) TTL created_at + toIntervalDay(90) SETTINGS index_granularity = 8192";

    #[test]
    fn the_current_ttl_is_read_from_engine_full() {
        assert_eq!(current_ttl(BARE), None);
        assert_eq!(current_ttl(WITH_90), Some("created_at + toIntervalDay(90)"));
        assert_eq!(
            current_ttl("MergeTree ORDER BY id TTL minute + toIntervalDay(400)"),
            Some("minute + toIntervalDay(400)")
        );
    }

    #[test]
    fn restarting_with_the_same_retention_changes_nothing() {
        assert_eq!(plan(RAW, 90, WITH_90), None);
        assert_eq!(plan(RAW, 0, BARE), None);
    }

    #[test]
    fn another_retention_is_one_statement() {
        assert_eq!(
            plan(RAW, 30, WITH_90).as_deref(),
            Some("ALTER TABLE logs MODIFY TTL created_at + INTERVAL 30 DAY")
        );
        assert_eq!(
            plan(ROLLUP, 400, BARE).as_deref(),
            Some("ALTER TABLE logs_minute MODIFY TTL minute + INTERVAL 400 DAY")
        );
        assert_eq!(
            plan(RAW, 0, WITH_90).as_deref(),
            Some("ALTER TABLE logs REMOVE TTL")
        );
    }

    #[test]
    fn the_defaults_keep_the_rollup_longer_than_the_raw_rows() {
        let retention = Retention::default();
        assert_eq!((retention.raw_days, retention.rollup_days), (90, 400));
        assert_eq!(retention.tables()[0].0, RAW);
    }

    #[test]
    fn on_a_cluster_the_ttls_change_every_servers_storage_tables() {
        use crate::cluster::{Cluster, alter_on_cluster};
        let cluster = || Cluster::new("logs_cluster").expect("valid name");
        let raw = plan(RAW, 90, "MergeTree ORDER BY x").expect("a change");
        assert_eq!(
            alter_on_cluster(&raw, &cluster()).expect("variant"),
            "ALTER TABLE logs_local ON CLUSTER 'logs_cluster' MODIFY TTL created_at + INTERVAL 90 DAY"
        );
        let removed =
            plan(ROLLUP, 0, "MergeTree TTL minute + toIntervalDay(400)").expect("a change");
        assert_eq!(
            alter_on_cluster(&removed, &cluster()).expect("variant"),
            "ALTER TABLE logs_minute_local ON CLUSTER 'logs_cluster' REMOVE TTL"
        );
        assert!(alter_on_cluster("DROP TABLE logs", &cluster()).is_err());
    }
}
