//! The live tail's queries: the rows that reached ClickHouse after a [`TailCursor`], in the
//! tail's order (`ingested_at, event_id`), read through migration 11's min-max index on
//! `ingested_at`. The shared reader asks for every row up to a moment that has settled; a
//! reconnecting client catches up with its own filters up to where the reader stands.

use clickhouse::Row;
use logbus_projections::rows::LogRow;
use logbus_projections::tables;
use serde::Deserialize;
use uuid::Uuid;

use super::Store;
use super::logs::list_conditions;
use crate::error::DbError;
use crate::params::{LogFilter, TailCursor};
use crate::sql::{Conditions, Value};

/// A [`LogRow`] with the moment it reached ClickHouse: the only read of `logs` that needs it.
#[derive(Debug, Row, Deserialize)]
struct TailRow {
    #[serde(with = "clickhouse::serde::uuid")]
    event_id: Uuid,
    created_at: u32,
    #[serde(rename = "type")]
    log_type: u8,
    user_id: i64,
    username: String,
    token_id: i64,
    token_name: String,
    model_name: String,
    quota: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    use_time: i32,
    is_stream: bool,
    channel_id: i64,
    channel_name: String,
    group: String,
    ip: String,
    request_id: String,
    upstream_request_id: String,
    content: String,
    other: String,
    ingest_batch: u64,
    /// `DateTime64(3)`: milliseconds.
    ingested_at: i64,
}

impl From<TailRow> for (TailCursor, LogRow) {
    fn from(row: TailRow) -> Self {
        let cursor = TailCursor {
            ingested_ms: row.ingested_at,
            event_id: row.event_id,
        };
        let log = LogRow {
            event_id: row.event_id,
            created_at: row.created_at,
            log_type: row.log_type,
            user_id: row.user_id,
            username: row.username,
            token_id: row.token_id,
            token_name: row.token_name,
            model_name: row.model_name,
            quota: row.quota,
            prompt_tokens: row.prompt_tokens,
            completion_tokens: row.completion_tokens,
            use_time: row.use_time,
            is_stream: row.is_stream,
            channel_id: row.channel_id,
            channel_name: row.channel_name,
            group: row.group,
            ip: row.ip,
            request_id: row.request_id,
            upstream_request_id: row.upstream_request_id,
            content: row.content,
            other: row.other,
            ingest_batch: row.ingest_batch,
        };
        (cursor, log)
    }
}

/// Where a tail read stops.
#[derive(Debug, Clone, Copy)]
pub enum TailEnd {
    /// Rows that reached ClickHouse at least this many milliseconds before the server's
    /// `now64(3)`: the shared reader's bound (see docs/api.md, "Live tail").
    Settled { settle_ms: i64 },
    /// Rows up to and including this position: a catch-up.
    At(TailCursor),
}

impl Conditions {
    /// Rows strictly after `cursor` in the tail's order.
    fn after_cursor(&mut self, cursor: &TailCursor) {
        let t = self.bind(Value::I64(cursor.ingested_ms));
        let id = self.bind(Value::Uuid(cursor.event_id.to_string()));
        self.push(format!(
            "ingested_at >= fromUnixTimestamp64Milli({t}) AND \
             (ingested_at > fromUnixTimestamp64Milli({t}) OR event_id > {id})"
        ));
    }

    fn up_to(&mut self, end: &TailEnd) {
        match end {
            TailEnd::Settled { settle_ms } => {
                let settle = self.bind(Value::I64(*settle_ms));
                self.push(format!(
                    "ingested_at <= now64(3) - toIntervalMillisecond({settle})"
                ));
            }
            TailEnd::At(cursor) => {
                let t = self.bind(Value::I64(cursor.ingested_ms));
                let id = self.bind(Value::Uuid(cursor.event_id.to_string()));
                self.push(format!(
                    "ingested_at <= fromUnixTimestamp64Milli({t}) AND \
                     (ingested_at < fromUnixTimestamp64Milli({t}) OR event_id <= {id})"
                ));
            }
        }
    }
}

impl Store {
    /// The server's clock in milliseconds: where a new shared reader starts (rows that were
    /// queryable before it are the lists' business, not the tail's).
    pub async fn tail_start(&self) -> Result<i64, DbError> {
        let query = self.client.query("SELECT toUnixTimestamp64Milli(now64(3))");
        self.timed("tail_start", query.fetch_one::<i64>()).await
    }

    /// At most `limit` rows after `after` up to `end`, in the tail's order, matching `filter`
    /// (`None`: every row; the shared reader filters per client in memory).
    pub async fn tail(
        &self,
        kind: &'static str,
        filter: Option<&LogFilter>,
        after: &TailCursor,
        end: &TailEnd,
        limit: u64,
    ) -> Result<Vec<(TailCursor, LogRow)>, DbError> {
        let mut conditions = filter.map(list_conditions).unwrap_or_default();
        conditions.after_cursor(after);
        conditions.up_to(end);
        let limit = conditions.bind(Value::U64(limit));
        let sql = format!(
            "SELECT ?fields FROM {} {} ORDER BY ingested_at, event_id LIMIT {limit}",
            tables::LOGS,
            conditions.where_clause()
        );
        let rows = self
            .timed(kind, self.query(&sql, &conditions).fetch_all::<TailRow>())
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
