//! Every ClickHouse query of the API. Values always travel as server-side query parameters
//! (`{name:Type}` + `param_name`), never inside the SQL text.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use clickhouse::{Client, Row};
use logbus_projections::rows::{LogRow, TokenRow, UserRow};
use logbus_projections::{partition_id, tables};
use moka::future::Cache;
use serde::Deserialize;

use crate::error::DbError;
use crate::params::{Conditions, LogFilter, Value};

/// Most rows `/api/log/search` returns.
pub const SEARCH_LIMIT: u64 = 100;
/// Most rows `/api/log/token` returns.
pub const TOKEN_LOGS_LIMIT: u64 = 1000;
/// The window of `rpm` and `tpm`, in seconds.
pub const RATE_WINDOW_SECS: i64 = 60;

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

#[derive(Clone)]
pub struct Store {
    client: Client,
    timeout: Duration,
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

impl Store {
    pub fn new(client: Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }

    async fn timed<T>(
        &self,
        query: impl Future<Output = clickhouse::error::Result<T>>,
    ) -> Result<T, DbError> {
        match tokio::time::timeout(self.timeout, query).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(DbError::Timeout(self.timeout)),
        }
    }

    fn query(&self, sql: &str, conditions: &Conditions) -> clickhouse::query::Query {
        conditions.apply(self.client.query(sql))
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        self.timed(self.client.query("SELECT 1").fetch_one::<u8>())
            .await
            .map(drop)
    }

    /// One page of logs, newest first, and the exact number of matching logs.
    ///
    /// The count and the page are two queries sent concurrently (a server that runs queries in
    /// parallel answers in the time of the slower one). Counts filtered only on the keys of the
    /// aggregate projections (user, type, model, channel, group) are answered from them.
    pub async fn list(
        &self,
        filter: &LogFilter,
        limit: u64,
        offset: u64,
    ) -> Result<(Vec<LogRow>, u64), DbError> {
        let mut conditions = Conditions::default();
        conditions.dimensions(filter);
        conditions.time_range("created_at", filter.start, filter.end);
        let count_sql = format!(
            "SELECT count() FROM {} {}",
            tables::LOGS,
            conditions.where_clause()
        );
        let (total, rows) = tokio::try_join!(
            self.timed(self.query(&count_sql, &conditions).fetch_one::<u64>()),
            self.newest(conditions.clone(), limit, offset),
        )?;
        Ok((rows, total))
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
        self.newest(conditions, SEARCH_LIMIT, 0).await
    }

    /// The newest logs of one token.
    pub async fn token_logs(&self, token: &TokenRow) -> Result<Vec<LogRow>, DbError> {
        let mut conditions = Conditions::default();
        conditions.compare("token_id", "=", Value::I64(token.id));
        conditions.compare("user_id", "=", Value::I64(token.user_id));
        self.newest(conditions, TOKEN_LOGS_LIMIT, 0).await
    }

    /// The newest `limit` logs matching `conditions`, after skipping the `offset` newest.
    async fn newest(
        &self,
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
        self.timed(self.query(&sql, &conditions).fetch_all::<LogRow>())
            .await
    }

    /// Quota over the filters and time range, and rpm/tpm over the last minute before `now`,
    /// in one statement.
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
        let sql = format!(
            "SELECT {quota} AS quota, requests, tokens FROM \
             (SELECT count() AS requests, sum(prompt_tokens + completion_tokens) AS tokens \
              FROM {} {})",
            tables::LOGS,
            conditions.take_where()
        );
        let row = self
            .timed(self.query(&sql, &conditions).fetch_one::<StatRow>())
            .await?;
        Ok(Stat {
            quota: row.quota,
            rpm: row.requests,
            tpm: row.tokens,
        })
    }

    /// The latest version of the user holding this access token hash, if any.
    pub async fn user_by_access_token(&self, hash: &str) -> Result<Option<UserRow>, DbError> {
        self.latest_holding_hash(
            tables::USERS,
            "id, username, role, status, `group`, access_token_sha256, version",
            "access_token_sha256",
            hash,
            |user: &UserRow| &user.access_token_sha256,
        )
        .await
    }

    /// The latest version of the token with this key hash, if any.
    pub async fn token_by_key(&self, hash: &str) -> Result<Option<TokenRow>, DbError> {
        self.latest_holding_hash(
            tables::TOKENS,
            "id, user_id, name, key_sha256, status, version",
            "key_sha256",
            hash,
            |token: &TokenRow| &token.key_sha256,
        )
        .await
    }

    /// The latest version (FINAL) of the identity whose `hash_column` is `hash`, if any.
    async fn latest_holding_hash<T>(
        &self,
        table: &str,
        columns: &str,
        hash_column: &str,
        hash: &str,
        stored_hash: fn(&T) -> &str,
    ) -> Result<Option<T>, DbError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        let sql = format!(
            "SELECT {columns} FROM {table} FINAL WHERE id IN \
             (SELECT id FROM {table} WHERE {hash_column} = {{hash:String}})"
        );
        let rows = self
            .timed(self.client.query(&sql).param("hash", hash).fetch_all::<T>())
            .await?;
        // An older version may have held the hash: only the latest version counts.
        Ok(rows.into_iter().find(|row| stored_hash(row) == hash))
    }

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
                "INSERT INTO {rollup} (minute, type, user_id, username, token_id, token_name, \
                   model_name, channel_id, `group`, requests, quota, prompt_tokens, completion_tokens) \
                 SELECT toStartOfMinute(created_at) AS minute, type, user_id, username, token_id, \
                   token_name, model_name, channel_id, `group`, count(), sum(quota), \
                   sum(prompt_tokens), sum(completion_tokens) \
                 FROM {logs} {where_clause} \
                 GROUP BY minute, type, user_id, username, token_id, token_name, model_name, \
                   channel_id, `group`",
                rollup = tables::LOGS_MINUTE,
                logs = tables::LOGS,
                where_clause = minute.where_clause()
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

/// An inclusive range of unix seconds; `None` is unbounded.
type Range = (Option<i64>, Option<i64>);

/// Whether the hourly aggregate projections of `logs` can answer these filters: `stat_hour`
/// keys on type, model, channel and group; `stat_user_hour` on user and type.
pub fn hour_tier_applies(filter: &LogFilter) -> bool {
    let global = filter.model_name.is_some() || filter.channel.is_some() || filter.group.is_some();
    filter.request_id.is_none()
        && filter.username.is_none()
        && filter.token_name.is_none()
        && filter.token_id.is_none()
        && !(filter.user_id.is_some() && global)
}

/// Splits `range` at multiples of `unit`: the whole units inside it as a half-open `[a, b)`
/// (`None` when there are none) and the inclusive leftovers at either edge.
fn split(range: Range, unit: i64) -> (Option<Range>, Vec<Range>) {
    let (start, end) = range;
    let first = start.map(|s| (s + unit - 1).div_euclid(unit) * unit);
    let last = end.map(|e| (e + 1).div_euclid(unit) * unit);
    let whole = match (first, last) {
        (Some(a), Some(b)) => a < b,
        _ => true,
    };
    if !whole {
        return (None, vec![range]);
    }
    let mut edges = Vec::new();
    if let (Some(s), Some(a)) = (start, first)
        && s < a
    {
        edges.push((Some(s), Some(a - 1)));
    }
    if let (Some(b), Some(e)) = (last, end)
        && b <= e
    {
        edges.push((Some(b), Some(e)));
    }
    (Some((first, last)), edges)
}

/// `(expr >= a AND expr < b) OR ...` over half-open ranges (`inclusive_end`: `<=` instead).
fn ranges_clause(
    conditions: &mut Conditions,
    expr: &str,
    ranges: &[Range],
    inclusive_end: bool,
) -> String {
    let alternatives: Vec<String> = ranges
        .iter()
        .map(|(start, end)| {
            let mut parts = Vec::new();
            if let Some(s) = start {
                parts.push(format!("{expr} >= {}", conditions.bind(Value::I64(*s))));
            }
            if let Some(e) = end {
                let op = if inclusive_end { "<=" } else { "<" };
                parts.push(format!("{expr} {op} {}", conditions.bind(Value::I64(*e))));
            }
            if parts.is_empty() {
                parts.push("true".to_owned());
            }
            format!("({})", parts.join(" AND "))
        })
        .collect();
    format!("({})", alternatives.join(" OR "))
}

/// The SQL expression of the quota over the filters and time range: the tiers' queries as
/// scalar subqueries added together, with their values bound on `conditions`.
fn quota_expression(filter: &LogFilter, conditions: &mut Conditions) -> String {
    let terms = quota_queries(filter, conditions);
    if terms.is_empty() {
        return "toInt64(0)".to_owned();
    }
    terms
        .iter()
        .map(|query| format!("ifNull(({query}), toInt64(0))"))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// The `SELECT sum(quota) ...` of each tier the range needs, in tier order (whole hours,
/// whole minutes, seconds), with their values bound on `conditions`. Public so that tests can
/// check how ClickHouse plans them.
pub fn quota_queries(filter: &LogFilter, conditions: &mut Conditions) -> Vec<String> {
    let start = filter.start;
    let end = filter.end.filter(|end| *end <= i64::from(u32::MAX));
    if start.is_some_and(|s| s > i64::from(u32::MAX)) {
        return Vec::new();
    }
    let mut terms = Vec::new();
    // Tier 1: whole hours, answered by the aggregate projections of `logs`.
    let mut rest = vec![(start, end)];
    if hour_tier_applies(filter) {
        let (hours, edges) = split((start, end), HOUR);
        if let Some(hours) = hours {
            conditions.dimensions(filter);
            let clause = ranges_clause(conditions, "toStartOfHour(created_at)", &[hours], false);
            conditions.push(clause);
            terms.push(format!(
                "SELECT sum(quota) FROM {} {}",
                tables::LOGS,
                conditions.take_where()
            ));
            rest = edges;
        }
    }
    // Tier 2: whole minutes from the rollup; tier 3: the seconds left, from the raw rows.
    let mut minutes = Vec::new();
    let mut seconds = Vec::new();
    for range in rest {
        if filter.request_id.is_some() {
            seconds.push(range);
            continue;
        }
        let (whole, edges) = split(range, MINUTE);
        minutes.extend(whole);
        seconds.extend(edges);
    }
    if !minutes.is_empty() {
        conditions.dimensions(filter);
        let clause = ranges_clause(conditions, "minute", &minutes, false);
        conditions.push(clause);
        terms.push(format!(
            "SELECT sum(quota) FROM {} {}",
            tables::LOGS_MINUTE,
            conditions.take_where()
        ));
    }
    if !seconds.is_empty() {
        conditions.dimensions(filter);
        let clause = ranges_clause(conditions, "created_at", &seconds, true);
        conditions.push(clause);
        terms.push(format!(
            "SELECT sum(quota) FROM {} {}",
            tables::LOGS,
            conditions.take_where()
        ));
    }
    terms
}

/// Users and tokens looked up for authentication, cached for a short TTL so that most requests
/// cost no identity round trip while a disabled user is still locked out within seconds.
#[derive(Clone)]
pub struct IdentityCache {
    store: Store,
    users: Option<Cache<String, Option<Arc<UserRow>>>>,
    tokens: Option<Cache<String, Option<Arc<TokenRow>>>>,
}

impl IdentityCache {
    pub fn new(store: Store, ttl: Duration) -> Self {
        fn build<V: Clone + Send + Sync + 'static>(ttl: Duration) -> Option<Cache<String, V>> {
            (!ttl.is_zero()).then(|| {
                Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(ttl)
                    .build()
            })
        }
        Self {
            store,
            users: build(ttl),
            tokens: build(ttl),
        }
    }

    pub async fn user(&self, access_token_hash: &str) -> Result<Option<Arc<UserRow>>, DbError> {
        let load = async {
            Ok::<_, DbError>(
                self.store
                    .user_by_access_token(access_token_hash)
                    .await?
                    .map(Arc::new),
            )
        };
        match &self.users {
            None => load.await,
            Some(cache) => cache
                .try_get_with(access_token_hash.to_owned(), load)
                .await
                .map_err(|e| (*e).clone()),
        }
    }

    pub async fn token(&self, key_hash: &str) -> Result<Option<Arc<TokenRow>>, DbError> {
        let load =
            async { Ok::<_, DbError>(self.store.token_by_key(key_hash).await?.map(Arc::new)) };
        match &self.tokens {
            None => load.await,
            Some(cache) => cache
                .try_get_with(key_hash.to_owned(), load)
                .await
                .map_err(|e| (*e).clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_split_into_whole_units_and_edges() {
        // Inclusive [10, 7325] -> whole hours [3600, 7200) and edges [10, 3599], [7200, 7325].
        assert_eq!(
            split((Some(10), Some(7325)), HOUR),
            (
                Some((Some(3600), Some(7200))),
                vec![(Some(10), Some(3599)), (Some(7200), Some(7325))]
            )
        );
        // Aligned ends leave no edges; an end at the last second of an hour includes it.
        assert_eq!(
            split((Some(3600), Some(7199)), HOUR),
            (Some((Some(3600), Some(7200))), vec![])
        );
        // No whole unit inside: the range is all edge.
        assert_eq!(
            split((Some(3601), Some(7199)), HOUR),
            (None, vec![(Some(3601), Some(7199))])
        );
        assert_eq!(
            split((Some(200), Some(100)), MINUTE),
            (None, vec![(Some(200), Some(100))])
        );
        // Unbounded ends stay unbounded.
        assert_eq!(
            split((None, Some(130)), MINUTE),
            (Some((None, Some(120))), vec![(Some(120), Some(130))])
        );
        assert_eq!(split((None, None), HOUR), (Some((None, None)), vec![]));
    }

    #[test]
    fn hour_tier_only_for_projection_keys() {
        let base = LogFilter {
            log_type: Some(2),
            ..Default::default()
        };
        assert!(hour_tier_applies(&base));
        assert!(hour_tier_applies(&LogFilter {
            channel: Some(3),
            group: Some("vip".into()),
            ..base.clone()
        }));
        assert!(hour_tier_applies(&LogFilter {
            user_id: Some(1),
            ..base.clone()
        }));
        assert!(!hour_tier_applies(&LogFilter {
            user_id: Some(1),
            channel: Some(3),
            ..base.clone()
        }));
        assert!(!hour_tier_applies(&LogFilter {
            token_name: Some("t".into()),
            ..base.clone()
        }));
        assert!(!hour_tier_applies(&LogFilter {
            request_id: Some("r".into()),
            ..base
        }));
    }
}
