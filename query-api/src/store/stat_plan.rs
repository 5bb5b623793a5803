//! The pure planner of the stat's quota: which tiers (whole hours from the aggregate
//! projections of `logs`, whole minutes from `logs_minute`, the seconds left from `logs`) a
//! time range and filters need, as SQL with bound values. No I/O: [`super::logs`] runs it, and
//! tests check the plan ClickHouse makes of it.

use logbus_projections::tables;

use super::{HOUR, MINUTE};
use crate::params::LogFilter;
use crate::sql::{Conditions, Value};

/// An inclusive range of unix seconds; `None` is unbounded.
pub(super) type Range = (Option<i64>, Option<i64>);

/// Whether the hourly aggregate projections of `logs` can answer these filters: `stat_hour`
/// keys on type, model, channel and group; `stat_user_hour` on user and type.
pub fn hour_tier_applies(filter: &LogFilter) -> bool {
    let global = filter.model_name.is_some() || filter.channel.is_some() || filter.group.is_some();
    filter.request_id.is_none()
        && filter.username.is_none()
        && filter.token_name.is_none()
        && !(filter.user_id.is_some() && global)
}

/// Splits `range` at multiples of `unit`: the whole units inside it as a half-open `[a, b)`
/// (`None` when there are none) and the inclusive leftovers at either edge.
pub(super) fn split(range: Range, unit: i64) -> (Option<Range>, Vec<Range>) {
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
pub(super) fn ranges_clause(
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
pub(super) fn quota_expression(filter: &LogFilter, conditions: &mut Conditions) -> String {
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
