//! new-api's dashboard data (`/api/data/*`): consumption logs per UTC hour bucket, summed from
//! the per-minute rollup.
//!
//! new-api buckets each consume log into `created_at - created_at % 3600` and selects the
//! buckets whose start lies in `[start, end]`. Those buckets are whole hours, hence whole
//! minutes, so `logs_minute` answers them exactly and no raw row is read: from its hourly
//! projections (migration 12), one keyed by user for the self dashboard and one per model for
//! the site's. (The hourly projections of `logs` carry no token sums for `token_used`.)

use clickhouse::Row;
use logbus_projections::events::LOG_TYPE_CONSUME;
use logbus_projections::tables;
use serde::Deserialize;

use super::{HOUR, Store};
use crate::error::DbError;
use crate::sql::{Conditions, Value};

/// Whose rows, and grouped how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataGrouping {
    /// Per model and hour, over all users (`/api/data/` without username).
    Models,
    /// One username's rows per model and hour (`/api/data/?username=`).
    Username(String),
    /// Per username and hour (`/api/data/users`).
    Users,
    /// One user's rows per model and hour (`/api/data/self`).
    User(i64),
}

/// One hour bucket as ClickHouse returns it.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct DataRow {
    pub created_at: u32,
    pub user_id: i64,
    pub username: String,
    pub model_name: String,
    pub count: u64,
    pub quota: i64,
    pub token_used: i64,
}

/// The events of the buckets whose start lies in `[start, end]`, as a half-open range of
/// whole hours `[first, last)`; `None` when there is no such bucket. Bounds beyond the
/// `DateTime` range (1970..2106) are clamped to it.
pub fn hour_window(start: i64, end: i64) -> Option<(i64, i64)> {
    let max = i64::from(u32::MAX);
    if start > max || end < 0 {
        return None;
    }
    let first = (start.max(0) + HOUR - 1).div_euclid(HOUR) * HOUR;
    let end = end.min(max);
    let last = end.div_euclid(HOUR) * HOUR + HOUR;
    (first < last).then_some((first, last))
}

impl DataGrouping {
    /// `(selected columns, GROUP BY and ORDER BY keys)` besides the hour.
    fn columns(&self) -> (&'static str, &'static str) {
        match self {
            DataGrouping::Models => (
                "toInt64(0) AS user_id, '' AS username, model_name",
                "model_name",
            ),
            DataGrouping::Users => (
                "toInt64(0) AS user_id, username, '' AS model_name",
                "username",
            ),
            DataGrouping::Username(_) | DataGrouping::User(_) => (
                "user_id, username, model_name",
                "user_id, username, model_name",
            ),
        }
    }
}

/// The hour bucket of a rollup row, as the projections `data_user_hour` and `data_model_hour`
/// spell it.
const HOUR_OF_MINUTE: &str = "toStartOfHour(minute)";

/// The statement of `grouping` over the hour window `[first, last)`.
pub fn data_query(grouping: &DataGrouping, first: i64, last: i64) -> (String, Conditions) {
    let mut conditions = Conditions::default();
    conditions.compare("type", "=", Value::I64(i64::from(LOG_TYPE_CONSUME)));
    // Whole hours, bounded on the hour itself: only then can ClickHouse answer from the hourly
    // projections of `logs_minute` (migration 12) instead of its minute rows.
    conditions.compare(HOUR_OF_MINUTE, ">=", Value::I64(first));
    conditions.compare(HOUR_OF_MINUTE, "<", Value::I64(last));
    match grouping {
        DataGrouping::Username(name) => {
            conditions.compare("username", "=", Value::Str(name.clone()))
        }
        DataGrouping::User(id) => conditions.compare("user_id", "=", Value::I64(*id)),
        DataGrouping::Models | DataGrouping::Users => {}
    }
    let (columns, keys) = grouping.columns();
    let sql = format!(
        "SELECT toUInt32({HOUR_OF_MINUTE}) AS created_at, {columns}, \
         sum(requests) AS count, sum(quota) AS quota, \
         sum(prompt_tokens) + sum(completion_tokens) AS token_used \
         FROM {} {} GROUP BY created_at, {keys} ORDER BY created_at, {keys}",
        tables::LOGS_MINUTE,
        conditions.where_clause()
    );
    (sql, conditions)
}

impl Store {
    /// The hour buckets of consumption logs whose start lies in `[start, end]`, ascending by
    /// hour.
    pub async fn quota_data(
        &self,
        grouping: &DataGrouping,
        start: i64,
        end: i64,
    ) -> Result<Vec<DataRow>, DbError> {
        let Some((first, last)) = hour_window(start, end) else {
            return Ok(Vec::new());
        };
        let (sql, conditions) = data_query(grouping, first, last);
        self.timed("data", self.query(&sql, &conditions).fetch_all::<DataRow>())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_starts_in_the_range_select_whole_hours() {
        // Buckets 3600 and 7200 start inside [1, 7200]: events of [3600, 10800).
        assert_eq!(hour_window(1, 7200), Some((3600, 10_800)));
        // A start on the hour includes that hour; an end before the next start excludes it.
        assert_eq!(hour_window(3600, 7199), Some((3600, 7200)));
        // No bucket starts inside (3600, 7200).
        assert_eq!(hour_window(3601, 7199), None);
        // new-api's missing end (0) leaves only the bucket starting at 0.
        assert_eq!(hour_window(0, 0), Some((0, 3600)));
        assert_eq!(hour_window(-100, -1), None);
        assert_eq!(hour_window(5000, 100), None);
        assert_eq!(hour_window(i64::MAX, i64::MAX), None);
        let (_, last) = hour_window(0, i64::MAX).expect("not empty");
        assert!(last > i64::from(u32::MAX));
    }

    #[test]
    fn groupings_filter_and_group_as_new_api_does() {
        let (sql, _) = data_query(&DataGrouping::Models, 0, 3600);
        assert!(sql.contains("GROUP BY created_at, model_name"), "{sql}");
        assert!(sql.contains("WHERE type = {p0:Int64}"), "{sql}");
        // Bounded on the hour, as the hourly projections are keyed.
        assert!(
            sql.contains(
                "toStartOfHour(minute) >= {p1:Int64} AND toStartOfHour(minute) < {p2:Int64}"
            ),
            "{sql}"
        );
        let (sql, _) = data_query(&DataGrouping::User(5), 0, 3600);
        assert!(sql.contains("user_id = {p3:Int64}"), "{sql}");
        assert!(sql.contains("GROUP BY created_at, user_id, username, model_name"));
        let (sql, _) = data_query(&DataGrouping::Users, 0, 3600);
        assert!(sql.contains("GROUP BY created_at, username "), "{sql}");
    }
}
