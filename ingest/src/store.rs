//! The worker's ClickHouse calls: batch intents, event-id dedup lookups and inserts, each
//! bounded by a timeout. Table names come from `logbus_projections::tables` and SELECTs of
//! row types list their columns with `?fields`, so the schema has one home.

use std::collections::HashSet;
use std::time::Duration;

use clickhouse::Client;
use logbus_projections::rows::{Intent, LogRow, TokenRow, UserRow};
use logbus_projections::tables;
use uuid::Uuid;

use crate::source::TopicPartition;

/// A lookup that has not answered by then is retried: a connection that hangs (a dead peer
/// behind a proxy, a stuck server) must not stall its partition forever.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Send and end timeouts of row inserts (the end waits for the server's whole insert).
const INSERT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
const INSERT_END_TIMEOUT: Duration = Duration::from_secs(120);
/// The same for the one-row intent records.
const INTENT_SEND_TIMEOUT: Duration = Duration::from_secs(10);
const INTENT_END_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a ClickHouse query future with [`QUERY_TIMEOUT`]; the crate has no timeout of its own
/// for queries.
async fn bounded<T>(
    query: impl std::future::Future<Output = clickhouse::error::Result<T>>,
) -> clickhouse::error::Result<T> {
    tokio::time::timeout(QUERY_TIMEOUT, query)
        .await
        .unwrap_or(Err(clickhouse::error::Error::TimedOut))
}

/// The ClickHouse calls of the worker. Each is one attempt; [`crate::retry`] decides what is
/// retried.
#[derive(Clone)]
pub(crate) struct Store {
    client: Client,
    dedup_window_secs: u64,
    /// `logs` is a Distributed table (docs/scaling.md): its inserts must reach the shards
    /// before they are acknowledged.
    clustered: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dedup_window_secs", &self.dedup_window_secs)
            .field("clustered", &self.clustered)
            .finish_non_exhaustive()
    }
}

impl Store {
    pub(crate) fn new(client: Client, dedup_window_secs: u64, clustered: bool) -> Self {
        Self {
            client,
            dedup_window_secs,
            clustered,
        }
    }

    /// Intents of this group and partition that end at or after `from_offset`, ordered by
    /// first offset, keeping the newest record of each first offset and skipping overlaps.
    pub(crate) async fn load_intents(
        &self,
        group: &str,
        source: &TopicPartition,
        from_offset: i64,
    ) -> clickhouse::error::Result<Vec<Intent>> {
        let mut intents = bounded(
            self.client
                .query(&format!(
                    "SELECT ?fields FROM {}
                 WHERE consumer_group = ? AND topic = ? AND partition = ? AND last_offset >= ?
                 ORDER BY first_offset, recorded_at DESC
                 LIMIT 1 BY first_offset
                 LIMIT 100000",
                    tables::INGEST_BATCHES
                ))
                .bind(group)
                .bind(source.topic.as_str())
                .bind(source.partition)
                .bind(from_offset)
                .fetch_all::<Intent>(),
        )
        .await?;
        let mut end = i64::MIN;
        intents.retain(|intent| {
            let keep = intent.first_offset > end;
            if keep {
                end = intent.last_offset;
            }
            keep
        });
        Ok(intents)
    }

    pub(crate) async fn record_intent(&self, intent: &Intent) -> clickhouse::error::Result<()> {
        let mut insert = self
            .client
            .insert::<Intent>(tables::INGEST_BATCHES)
            .await?
            .with_timeouts(Some(INTENT_SEND_TIMEOUT), Some(INTENT_END_TIMEOUT));
        insert.write(intent).await?;
        insert.end().await
    }

    /// Event ids of `rows` already stored (within the dedup window) by batches other than
    /// `exclude_batch` (all batches with `None`).
    pub(crate) async fn existing_event_ids(
        &self,
        rows: &[LogRow],
        exclude_batch: Option<u64>,
    ) -> clickhouse::error::Result<HashSet<Uuid>> {
        let mut found = HashSet::new();
        if rows.is_empty() {
            return Ok(found);
        }
        let mut sorted: Vec<&LogRow> = rows.iter().collect();
        sorted.sort_by_key(|row| row.created_at);
        for chunk in sorted.chunks(5_000) {
            let min = chunk.first().map_or(0, |r| r.created_at);
            let max = chunk.last().map_or(0, |r| r.created_at);
            // The ids travel as a query parameter: ClickHouse parses an Array(UUID) value
            // about twice as fast as the same ids as SQL literals (measured with chDB 26.9:
            // 13 vs 26 ms for 5,000 ids), and this lookup costs as much as the insert.
            let ids: Vec<String> = chunk
                .iter()
                .map(|row| row.event_id.hyphenated().to_string())
                .collect();
            let exclude = exclude_batch
                .map(|id| format!("AND ingest_batch != {id}"))
                .unwrap_or_default();
            let sql = format!(
                "SELECT DISTINCT toString(event_id) FROM {}
                 WHERE created_at BETWEEN toDateTime({min}, 'UTC') AND toDateTime({max}, 'UTC')
                   AND event_id IN {{ids:Array(UUID)}}
                   {exclude}
                   AND ingested_at >= now64(3) - INTERVAL {} SECOND",
                tables::LOGS,
                self.dedup_window_secs
            );
            let existing = bounded(
                self.client
                    .query(&sql)
                    .param("ids", ids)
                    .fetch_all::<String>(),
            )
            .await?;
            for id in existing {
                if let Ok(id) = Uuid::parse_str(&id) {
                    found.insert(id);
                }
            }
        }
        Ok(found)
    }

    /// Inserts `rows` into `logs` as one deduplicated block set: a second insert with the same
    /// `token` is dropped by ClickHouse in `logs` and in the rollup alike.
    pub(crate) async fn insert_logs(
        &self,
        rows: &[LogRow],
        token: &str,
    ) -> clickhouse::error::Result<()> {
        let mut insert = self
            .client
            .insert::<LogRow>(tables::LOGS)
            .await?
            .with_setting("insert_deduplicate", "1")
            .with_setting("insert_deduplication_token", token)
            .with_setting("deduplicate_blocks_in_dependent_materialized_views", "1")
            .with_setting("max_partitions_per_insert_block", "0")
            .with_timeouts(Some(INSERT_SEND_TIMEOUT), Some(INSERT_END_TIMEOUT));
        if self.clustered {
            // A background Distributed insert is acknowledged from the receiving server's
            // queue: the batch would be committed before its rows reach a shard (and lost with
            // that server's disk). In the foreground each shard's block carries the token, so
            // a retry is dropped by every shard that already has its part of the batch.
            insert = insert.with_setting("distributed_foreground_insert", "1");
        }
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await
    }

    /// Identity rows are versioned (ReplacingMergeTree by version), so re-inserting them on a
    /// replay is harmless.
    pub(crate) async fn insert_identity(
        &self,
        users: &[UserRow],
        tokens: &[TokenRow],
    ) -> clickhouse::error::Result<()> {
        if !users.is_empty() {
            let mut insert = self
                .client
                .insert::<UserRow>(tables::USERS)
                .await?
                .with_timeouts(Some(INSERT_SEND_TIMEOUT), Some(INSERT_END_TIMEOUT));
            for row in users {
                insert.write(row).await?;
            }
            insert.end().await?;
        }
        if !tokens.is_empty() {
            let mut insert = self
                .client
                .insert::<TokenRow>(tables::TOKENS)
                .await?
                .with_timeouts(Some(INSERT_SEND_TIMEOUT), Some(INSERT_END_TIMEOUT));
            for row in tokens {
                insert.write(row).await?;
            }
            insert.end().await?;
        }
        Ok(())
    }
}
