//! The pure planner of the time series: how many buckets a request makes, which tiers answer
//! it (whole minutes from `logs_minute`, the seconds left at the edges from `logs`), and the
//! one statement that buckets, groups and keeps the top series. No I/O: [`super::series`]
//! runs the plan.
//!
//! The hourly projections of `logs` (`stat_hour`, `stat_user_hour`) hold counts and quota but
//! no token sums, and every point carries prompt and completion tokens, so the rollup is the
//! cheapest tier that is exact; the raw rows answer only what the rollup cannot (partial edge
//! minutes, `request_id`, day boundaries that are not on a minute).

use chrono::{DateTime, Offset, TimeZone};
use chrono_tz::Tz;
use logbus_projections::tables;

use super::MINUTE;
use super::stat_plan::{Range, ranges_clause, split};
use crate::error::BadInput;
use crate::params::{Dimension, Interval, SeriesQuery};
use crate::sql::{Conditions, Value};

/// Most buckets one request may ask for (30 days of minutes fit).
pub const MAX_BUCKETS: u64 = 50_000;
/// Most points (bucket × series) one answer may hold.
pub const MAX_POINTS: u64 = 200_000;

/// A planned series: one statement and its bound values.
#[derive(Debug)]
pub struct SeriesPlan {
    pub sql: String,
    pub conditions: Conditions,
}

/// The inclusive range of a request once its end is known (`end`: the request's, or now), or
/// `None` when it matches nothing (inverted, or starting after the `DateTime` range).
pub fn effective_range(query: &SeriesQuery, now: i64) -> Option<(i64, i64)> {
    let start = query.filter.start?;
    let end = query.filter.end.unwrap_or(now).min(i64::from(u32::MAX));
    (start <= end).then_some((start, end))
}

fn local_day(tz: Tz, ts: i64) -> Option<chrono::NaiveDate> {
    DateTime::from_timestamp(ts, 0).map(|utc| utc.with_timezone(&tz).date_naive())
}

/// The number of buckets of `[start, end]` (inclusive, `start <= end`).
pub fn bucket_count(interval: Interval, tz: Tz, start: i64, end: i64) -> u64 {
    let units = |unit: i64| (end.div_euclid(unit) - start.div_euclid(unit) + 1) as u64;
    match interval {
        Interval::Minute => units(MINUTE),
        Interval::Hour => units(super::HOUR),
        Interval::Day => match (local_day(tz, start), local_day(tz, end)) {
            (Some(a), Some(b)) => (b - a).num_days() as u64 + 1,
            _ => units(super::DAY),
        },
    }
}

/// Whether every day boundary of `tz` in `[start, end]` falls on a whole minute, so that
/// rollup minutes never straddle one. True of every zone's offsets since 1972; some zones'
/// earlier local mean times had seconds (Africa/Monrovia was UTC-0:44:30 until 1972).
/// Offsets are sampled once a day, which sees every offset that lasts a day or more.
pub fn day_boundaries_on_minutes(tz: Tz, start: i64, end: i64) -> bool {
    let offset_on_minute = |ts: i64| {
        DateTime::from_timestamp(ts, 0).is_none_or(|utc| {
            tz.offset_from_utc_datetime(&utc.naive_utc())
                .fix()
                .local_minus_utc()
                % 60
                == 0
        })
    };
    (start..=end)
        .step_by(super::DAY as usize)
        .chain([end])
        .all(offset_on_minute)
}

/// The bucket of `column` (a `DateTime`) as unix seconds.
fn bucket(interval: Interval, column: &str, tz_placeholder: &str) -> String {
    match interval {
        Interval::Minute => format!("toUInt32(toStartOfMinute({column}))"),
        Interval::Hour => format!("toUInt32(toStartOfHour({column}))"),
        Interval::Day => format!("toUInt32(toStartOfDay({column}, {tz_placeholder}))"),
    }
}

/// The grouping columns of one tier, each a dimension's key or a constant when the dimension
/// is not grouped, so that every tier and the answer have the same columns.
fn dimension_columns(group_by: &[Dimension]) -> String {
    let on = |d: Dimension, key: &'static str, none: &'static str| {
        if group_by.contains(&d) { key } else { none }
    };
    [
        format!("{} AS d_model", on(Dimension::Model, "model_name", "''")),
        format!("{} AS d_user", on(Dimension::User, "user_id", "toInt64(0)")),
        format!(
            "{} AS d_token",
            on(Dimension::Token, "token_id", "toInt64(0)")
        ),
        format!(
            "{} AS d_channel",
            on(Dimension::Channel, "channel_id", "toInt64(0)")
        ),
        format!("{} AS d_group", on(Dimension::Group, "`group`", "''")),
        // Names shown with the ids: the greatest in the bucket (they differ only after a
        // rename).
        format!("{} AS l_user", on(Dimension::User, "max(username)", "''")),
        format!(
            "{} AS l_token",
            on(Dimension::Token, "max(token_name)", "''")
        ),
    ]
    .join(", ")
}

const DIMENSIONS: &str = "d_model, d_user, d_token, d_channel, d_group";

/// Where a tier reads: its table, time column, whether its ranges end inclusively (seconds)
/// or not (whole minutes), and how it counts requests.
#[derive(Debug)]
struct Source {
    table: &'static str,
    time_column: &'static str,
    inclusive_end: bool,
    requests: &'static str,
}

const ROLLUP: Source = Source {
    table: tables::LOGS_MINUTE,
    time_column: "minute",
    inclusive_end: false,
    // Always summed: rows of one key may not be merged yet.
    requests: "sum(requests)",
};

const RAW: Source = Source {
    table: tables::LOGS,
    time_column: "created_at",
    inclusive_end: true,
    requests: "count()",
};

/// One tier: `source` over `ranges`, bucketed and grouped.
fn tier(
    query: &SeriesQuery,
    conditions: &mut Conditions,
    tz_placeholder: &str,
    source: &Source,
    ranges: &[Range],
) -> String {
    conditions.dimensions(&query.filter);
    let clause = ranges_clause(conditions, source.time_column, ranges, source.inclusive_end);
    conditions.push(clause);
    format!(
        "SELECT {bucket} AS t, {dimensions}, {requests} AS r, sum(quota) AS q, \
         sum(prompt_tokens) AS pt, sum(completion_tokens) AS ct FROM {table} {where_clause} \
         GROUP BY t, {DIMENSIONS}",
        bucket = bucket(query.interval, source.time_column, tz_placeholder),
        dimensions = dimension_columns(&query.group_by),
        requests = source.requests,
        table = source.table,
        where_clause = conditions.take_where(),
    )
}

/// Plans the series of `query` over `[start, end]` (from [`effective_range`]): refuses more
/// than [`MAX_BUCKETS`] buckets, then sends whole minutes to the rollup and the seconds left
/// to the raw rows, as `/api/log/stat` does. Rows come back ordered by bucket, at most
/// [`MAX_POINTS`] + 1 of them (one more than allowed, so the caller can tell).
pub fn plan(query: &SeriesQuery, start: i64, end: i64) -> Result<SeriesPlan, BadInput> {
    let buckets = bucket_count(query.interval, query.tz, start, end);
    if buckets > MAX_BUCKETS {
        return Err(BadInput::TooManyBuckets {
            buckets,
            max: MAX_BUCKETS,
        });
    }
    let mut conditions = Conditions::default();
    let tz_placeholder = conditions.bind(Value::Str(query.tz.name().to_owned()));
    let raw_only = query.filter.request_id.is_some()
        || (query.interval == Interval::Day && !day_boundaries_on_minutes(query.tz, start, end));
    let (minutes, seconds) = if raw_only {
        (None, vec![(Some(start), Some(end))])
    } else {
        split((Some(start), Some(end)), MINUTE)
    };
    let mut tiers = Vec::new();
    if let Some(minutes) = minutes {
        tiers.push(tier(
            query,
            &mut conditions,
            &tz_placeholder,
            &ROLLUP,
            &[minutes],
        ));
    }
    if !seconds.is_empty() {
        tiers.push(tier(
            query,
            &mut conditions,
            &tz_placeholder,
            &RAW,
            &seconds,
        ));
    }
    let combined = format!(
        "SELECT t, {DIMENSIONS}, max(l_user) AS lu, max(l_token) AS lt, sum(r) AS sr, \
         sum(q) AS sq, sum(pt) AS spt, sum(ct) AS sct FROM ({}) GROUP BY t, {DIMENSIONS}",
        tiers.join(" UNION ALL ")
    );
    let limit = conditions.bind(Value::U64(MAX_POINTS + 1));
    let sql = match query.top {
        None => format!(
            "SELECT t, toUInt8(1) AS kept, toString(d_model) AS model_name, d_user AS user_id, \
             d_token AS token_id, d_channel AS channel_id, toString(d_group) AS group_name, \
             toString(lu) AS username, toString(lt) AS token_name, sr AS requests, sq AS quota, \
             spt AS prompt_tokens, sct AS completion_tokens FROM ({combined}) \
             ORDER BY t LIMIT {limit}"
        ),
        Some(top) => {
            let top = conditions.bind(Value::U64(top.into()));
            // Each series' totals (a window over the grouped rows), then its rank: the rows of
            // one series share their totals and keys, so they share a rank.
            let ranked = format!(
                "SELECT *, dense_rank() OVER (ORDER BY series_quota DESC, series_requests DESC, \
                 {DIMENSIONS}) AS rk FROM (SELECT *, sum(sq) OVER w AS series_quota, \
                 sum(sr) OVER w AS series_requests FROM ({combined}) \
                 WINDOW w AS (PARTITION BY {DIMENSIONS}))"
            );
            format!(
                "SELECT t, toUInt8(rk <= {top}) AS kept, \
                 toString(if(kept = 1, d_model, '')) AS model_name, \
                 if(kept = 1, d_user, toInt64(0)) AS user_id, \
                 if(kept = 1, d_token, toInt64(0)) AS token_id, \
                 if(kept = 1, d_channel, toInt64(0)) AS channel_id, \
                 toString(if(kept = 1, d_group, '')) AS group_name, \
                 toString(if(kept = 1, lu, '')) AS username, \
                 toString(if(kept = 1, lt, '')) AS token_name, \
                 sum(sr) AS requests, sum(sq) AS quota, sum(spt) AS prompt_tokens, \
                 sum(sct) AS completion_tokens FROM ({ranked}) \
                 GROUP BY t, kept, model_name, user_id, token_id, channel_id, group_name, \
                 username, token_name ORDER BY t LIMIT {limit}"
            )
        }
    };
    Ok(SeriesPlan { sql, conditions })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::LogFilter;

    fn query(interval: Interval, tz: Tz) -> SeriesQuery {
        SeriesQuery {
            filter: LogFilter {
                log_type: Some(2),
                start: Some(0),
                ..Default::default()
            },
            interval,
            tz,
            group_by: vec![],
            top: None,
        }
    }

    #[test]
    fn buckets_are_counted_per_interval_and_local_day() {
        let utc = Tz::UTC;
        assert_eq!(bucket_count(Interval::Minute, utc, 0, 59), 1);
        assert_eq!(bucket_count(Interval::Minute, utc, 59, 60), 2);
        assert_eq!(bucket_count(Interval::Hour, utc, 3599, 3600 * 5), 6);
        assert_eq!(bucket_count(Interval::Day, utc, 0, 86_399), 1);
        // 2023-11-14 18:00 UTC to 2023-11-15 17:59 UTC is one UTC day boundary apart but
        // crosses local midnight once in Shanghai (+8): still two local days.
        let (a, b) = (1_699_984_800, 1_700_071_140);
        assert_eq!(bucket_count(Interval::Day, utc, a, b), 2);
        assert_eq!(bucket_count(Interval::Day, Tz::Asia__Shanghai, a, b), 2);
        // Kolkata (+5:30): 18:00 UTC is 23:30 local, 17:59 next day is 23:29: two days.
        assert_eq!(bucket_count(Interval::Day, Tz::Asia__Kolkata, a, b), 2);
        // 30 days of minutes fit under the limit.
        assert!(bucket_count(Interval::Minute, utc, 0, 30 * 86_400 - 1) <= MAX_BUCKETS);
    }

    #[test]
    fn ranges_end_at_now_and_inverted_ones_are_empty() {
        let mut q = query(Interval::Hour, Tz::UTC);
        q.filter.start = Some(100);
        assert_eq!(effective_range(&q, 500), Some((100, 500)));
        q.filter.end = Some(50);
        assert_eq!(effective_range(&q, 500), None);
        q.filter.end = Some(i64::MAX);
        assert_eq!(effective_range(&q, 500), Some((100, i64::from(u32::MAX))));
    }

    #[test]
    fn day_boundaries_off_the_minute_are_detected() {
        assert!(day_boundaries_on_minutes(
            Tz::Asia__Kolkata,
            0,
            400 * 86_400
        ));
        assert!(day_boundaries_on_minutes(Tz::Asia__Kathmandu, 0, 86_400));
        // Monrovia kept UTC-0:44:30 until 1972-01-07.
        assert!(!day_boundaries_on_minutes(Tz::Africa__Monrovia, 0, 86_400));
        assert!(day_boundaries_on_minutes(
            Tz::Africa__Monrovia,
            100_000_000,
            100_086_400
        ));
    }

    #[test]
    fn whole_minutes_come_from_the_rollup_and_edges_from_raw_rows() {
        let q = query(Interval::Hour, Tz::UTC);
        let plan = plan(&q, 30, 7_229).expect("plans");
        assert!(plan.sql.contains("FROM logs_minute WHERE"), "{}", plan.sql);
        assert!(plan.sql.contains("FROM logs WHERE"), "{}", plan.sql);
        assert!(plan.sql.contains("toStartOfHour(minute)"), "{}", plan.sql);
        assert!(!plan.sql.contains("dense_rank"), "no top, no ranking");
        // Aligned: the rollup alone.
        let aligned = super::plan(&q, 60, 7_199).expect("plans");
        assert!(!aligned.sql.contains("FROM logs WHERE"), "{}", aligned.sql);
        // Inside one minute, or by request id: the raw rows alone.
        let inside = super::plan(&q, 61, 100).expect("plans");
        assert!(!inside.sql.contains("logs_minute"), "{}", inside.sql);
        let mut by_request = q.clone();
        by_request.filter.request_id = Some("r".into());
        let raw = super::plan(&by_request, 0, 7_199).expect("plans");
        assert!(!raw.sql.contains("logs_minute"), "{}", raw.sql);
    }

    #[test]
    fn grouping_ranking_and_day_buckets_shape_the_statement() {
        let mut q = query(Interval::Day, Tz::Asia__Shanghai);
        q.group_by = vec![Dimension::Model, Dimension::User];
        q.top = Some(3);
        let plan = plan(&q, 0, 86_400 * 3).expect("plans");
        assert!(plan.sql.contains("model_name AS d_model"), "{}", plan.sql);
        assert!(plan.sql.contains("user_id AS d_user"), "{}", plan.sql);
        assert!(plan.sql.contains("toInt64(0) AS d_token"), "{}", plan.sql);
        assert!(plan.sql.contains("dense_rank()"), "{}", plan.sql);
        assert!(
            plan.sql.contains("toStartOfDay(minute, {p0:String})"),
            "{}",
            plan.sql
        );
        // A zone whose day started off the minute: raw rows only.
        let mut monrovia = query(Interval::Day, Tz::Africa__Monrovia);
        monrovia.filter.start = Some(0);
        let raw = super::plan(&monrovia, 0, 86_400).expect("plans");
        assert!(!raw.sql.contains("logs_minute"), "{}", raw.sql);
    }

    #[test]
    fn too_many_buckets_are_refused() {
        let q = query(Interval::Minute, Tz::UTC);
        assert!(matches!(
            plan(&q, 0, 40 * 86_400),
            Err(BadInput::TooManyBuckets { .. })
        ));
    }
}
