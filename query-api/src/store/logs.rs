//! The log queries: a page of logs with its exact total, search, the logs of one token, and
//! the stat (quota over the tiers that [`super::stat_plan`] plans, plus rpm/tpm).

use clickhouse::Row;
use logbus_projections::rows::{LogRow, TokenRow};
use logbus_projections::tables;
use serde::Deserialize;

use super::stat_plan::quota_expression;
use super::{LogRows, Store};
use crate::error::DbError;
use crate::params::{Cursor, LogFilter, Pagination};
use crate::sql::{Conditions, Value};

/// Most rows `/api/log/search` returns.
pub const SEARCH_LIMIT: u64 = 100;
/// Most rows `/api/log/token` returns.
pub const TOKEN_LOGS_LIMIT: u64 = 1000;
/// The window of `rpm` and `tpm`, in seconds.
pub const RATE_WINDOW_SECS: i64 = 60;

/// A page of [`Store::list`].
#[derive(Debug)]
pub struct ListPage {
    pub rows: Vec<LogRow>,
    pub total: u64,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub quota: i64,
    pub rpm: u64,
    pub tpm: i64,
}

#[derive(Debug, Row, Deserialize)]
struct StatRow {
    quota: i64,
    requests: u64,
    tokens: i64,
}

/// The conditions of a list of logs (the list, its count and the export alike): the filter's
/// dimensions and its `created_at` range.
pub(super) fn list_conditions(filter: &LogFilter) -> Conditions {
    let mut conditions = Conditions::default();
    conditions.dimensions(filter);
    conditions.time_range("created_at", filter.start, filter.end);
    conditions
}

impl Store {
    /// One page of logs, newest first, the exact number of matching logs and, when more
    /// rows follow, the cursor of the next page.
    ///
    /// The count and the page are two queries sent concurrently (a server that runs queries in
    /// parallel answers in the time of the slower one). Counts filtered only on the keys of the
    /// aggregate projections (user, type, model, channel, group) are answered from them. The
    /// page reads one row more than it returns, to know whether another page follows.
    pub async fn list(
        &self,
        filter: &LogFilter,
        pagination: &Pagination,
    ) -> Result<ListPage, DbError> {
        let conditions = list_conditions(filter);
        let count_sql = format!(
            "SELECT count() FROM {} {}",
            tables::LOGS,
            conditions.where_clause()
        );
        let mut page_conditions = conditions.clone();
        let offset = match pagination {
            Pagination::Offset(page) => page.offset(),
            Pagination::After { after, .. } => {
                page_conditions.before_row(after.created_at, &after.event_id);
                0
            }
        };
        let limit = pagination.page_size();
        let (total, mut rows) = tokio::try_join!(
            self.timed(
                "list_count",
                self.query(&count_sql, &conditions).fetch_one::<u64>()
            ),
            self.newest("list_page", page_conditions, limit + 1, offset),
        )?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let next = match rows.last() {
            Some(last) if more => Some(Cursor {
                created_at: last.created_at,
                event_id: last.event_id,
                // Saturating: the previous cursor's position is the client's.
                position: pagination.skipped().saturating_add(limit),
            }),
            _ => None,
        };
        Ok(ListPage { rows, total, next })
    }

    /// Logs whose type equals a numeric keyword or whose content contains the keyword
    /// (case-insensitive, literally), newest first.
    pub async fn search(
        &self,
        user_id: Option<i64>,
        keyword: &str,
    ) -> Result<Vec<LogRow>, DbError> {
        let mut conditions = Conditions::default();
        if let Some(user_id) = user_id {
            conditions.compare("user_id", "=", Value::I64(user_id));
        }
        // A plain case-insensitive substring search: no LIKE pattern, so `%`, `_` and `\` in
        // the keyword need no escaping, and ClickHouse searches the column without building a
        // lowercased copy of every row (10M rows: 117 -> 102 ms for a rare keyword).
        let keyword_ph = conditions.bind(Value::Str(keyword.to_owned()));
        let content = format!("positionCaseInsensitiveUTF8(content, {keyword_ph}) > 0");
        match keyword.trim().parse::<i64>() {
            Ok(log_type) => {
                let type_ph = conditions.bind(Value::I64(log_type));
                conditions.push(format!("(type = {type_ph} OR {content})"));
            }
            Err(_) => conditions.push(content),
        }
        self.newest("search", conditions, SEARCH_LIMIT, 0).await
    }

    /// The newest [`TOKEN_LOGS_LIMIT`] logs of one token, read through a cursor (rows are
    /// up to 1 MiB each: the handler streams them rather than collect a thousand), with the
    /// first row.
    pub async fn token_logs(&self, token: &TokenRow) -> Result<(LogRows, Option<LogRow>), DbError> {
        let mut conditions = Conditions::default();
        conditions.compare("token_id", "=", Value::I64(token.id));
        conditions.compare("user_id", "=", Value::I64(token.user_id));
        let limit = conditions.bind(Value::U64(TOKEN_LOGS_LIMIT));
        let sql = format!(
            "SELECT ?fields FROM {} {} ORDER BY created_at DESC, event_id DESC LIMIT {limit}",
            tables::LOGS,
            conditions.where_clause()
        );
        let query = self
            .query(&sql, &conditions)
            .with_setting("cancel_http_readonly_queries_on_client_close", "1");
        LogRows::open(self, "token_logs", query).await
    }

    /// The newest `limit` logs matching `conditions`, after skipping the `offset` newest.
    async fn newest(
        &self,
        kind: &'static str,
        mut conditions: Conditions,
        limit: u64,
        offset: u64,
    ) -> Result<Vec<LogRow>, DbError> {
        let limit = conditions.bind(Value::U64(limit));
        let offset = conditions.bind(Value::U64(offset));
        let sql = format!(
            "SELECT ?fields FROM {} {} ORDER BY created_at DESC, event_id DESC \
             LIMIT {limit} OFFSET {offset}",
            tables::LOGS,
            conditions.where_clause()
        );
        self.timed(kind, self.query(&sql, &conditions).fetch_all::<LogRow>())
            .await
    }

    /// Quota over the filters and time range, and rpm/tpm over the last minute up to `now`
    /// (`now - 60 ..= now`), in one statement.
    ///
    /// The quota range is split into tiers (see docs/api.md): whole hours are summed from `logs`
    /// with an hour-aligned filter that ClickHouse answers from the aggregate projections
    /// `stat_hour`/`stat_user_hour` when the filters allow it; the whole minutes left at either
    /// edge come from `logs_minute` (always with `sum()`: rows of one key may be unmerged); the
    /// partial minutes from `logs`. A `request_id` filter has no rollup column, so it scans
    /// `logs` only.
    pub async fn stat(&self, filter: &LogFilter, now: i64) -> Result<Stat, DbError> {
        let mut conditions = Conditions::default();
        let quota = quota_expression(filter, &mut conditions);
        conditions.dimensions(filter);
        conditions.compare("created_at", ">=", Value::I64(now - RATE_WINDOW_SECS));
        // Bounded above too (new-api is not): a log stamped in the future is not in the last
        // minute, and would otherwise count in every rpm until its time came.
        conditions.compare("created_at", "<=", Value::I64(now));
        let sql = format!(
            "SELECT {quota} AS quota, requests, tokens FROM \
             (SELECT count() AS requests, sum(prompt_tokens + completion_tokens) AS tokens \
              FROM {} {})",
            tables::LOGS,
            conditions.take_where()
        );
        let row = self
            .timed("stat", self.query(&sql, &conditions).fetch_one::<StatRow>())
            .await?;
        Ok(Stat {
            quota: row.quota,
            rpm: row.requests,
            tpm: row.tokens,
        })
    }
}
