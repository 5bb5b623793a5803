//! The list filters applied in memory, to the rows the shared reader fans out: the same
//! predicate as [`crate::sql::Conditions::dimensions`] plus the `created_at` range, so that a
//! tail shows exactly the rows the list would show for the same parameters.

use logbus_projections::rows::LogRow;

use crate::params::{LogFilter, Match};

/// Whether `row` passes every filter of `filter`.
pub fn matches(filter: &LogFilter, row: &LogRow) -> bool {
    let equal = |wanted: &Option<String>, value: &str| wanted.as_deref().is_none_or(|w| w == value);
    let pattern =
        |wanted: &Option<Match>, value: &str| wanted.as_ref().is_none_or(|m| m.accepts(value));
    let created_at = i64::from(row.created_at);
    filter.log_type.is_none_or(|t| t == i64::from(row.log_type))
        && filter.user_id.is_none_or(|id| id == row.user_id)
        && pattern(&filter.username, &row.username)
        && equal(&filter.token_name, &row.token_name)
        && pattern(&filter.model_name, &row.model_name)
        && filter.channel.is_none_or(|c| c == row.channel_id)
        && equal(&filter.group, &row.group)
        && equal(&filter.request_id, &row.request_id)
        && filter.start.is_none_or(|start| created_at >= start)
        && filter.end.is_none_or(|end| created_at <= end)
}

impl Match {
    /// Whether `value` matches, as ClickHouse's `=` or `LIKE` would (case-sensitive; in a
    /// [`Match::Like`] pattern only `%` is a wildcard, `\` escapes the next character).
    pub fn accepts(&self, value: &str) -> bool {
        match self {
            Match::Exact(exact) => exact == value,
            Match::Like(pattern) => like(&literal_runs(pattern), value),
        }
    }
}

/// The literal text between the `%` wildcards of an escaped LIKE pattern: `a%b` gives
/// `["a", "b"]`, `%a%` gives `["", "a", ""]`.
fn literal_runs(pattern: &str) -> Vec<String> {
    let mut runs = vec![String::new()];
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => runs.push(String::new()),
            '\\' => runs.last_mut().expect("never empty").extend(chars.next()),
            c => runs.last_mut().expect("never empty").push(c),
        }
    }
    runs
}

/// The first run anchors the start, the last the end, the middle ones are found in order.
fn like(runs: &[String], value: &str) -> bool {
    let [first, middle @ .., last] = runs else {
        return runs.first().is_some_and(|only| only == value);
    };
    let Some(rest) = value.strip_prefix(first.as_str()) else {
        return false;
    };
    let mut rest = rest;
    for run in middle {
        match rest.find(run.as_str()) {
            Some(at) => rest = &rest[at + run.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::tests::sample_row;

    fn like_of(pattern: &str) -> Match {
        Match::parse("model_name", pattern.to_owned()).expect("a valid pattern")
    }

    #[test]
    fn patterns_match_as_clickhouse_like() {
        let cases = [
            ("gpt%", "gpt-4o", true),
            ("gpt%", "xgpt", false),
            ("%4o", "gpt-4o", true),
            ("%4o", "gpt-4o-mini", false),
            ("%pt-4%", "gpt-4o", true),
            ("%pt-4%", "pt-", false),
            ("g%o", "go", true),
            ("ab%ba", "aba", false),
            ("%my_model%", "xmy_modely", true),
            // `_` is literal: new-api's rules make only `%` a wildcard.
            ("%my_model%", "xmyXmodely", false),
            ("%a\\b%", "xa\\by", true),
            ("%模型%", "大模型 v2", true),
            ("Gpt%", "gpt-4o", false),
        ];
        for (pattern, value, expected) in cases {
            assert_eq!(
                like_of(pattern).accepts(value),
                expected,
                "{pattern} ~ {value}"
            );
        }
        assert!(Match::Exact("gpt-4o".into()).accepts("gpt-4o"));
        assert!(!Match::Exact("gpt%".into()).accepts("gpt-4o"));
    }

    #[test]
    fn every_filter_is_applied() {
        let row = sample_row();
        assert!(matches(&LogFilter::default(), &row));
        let passing = LogFilter {
            log_type: Some(2),
            start: Some(1),
            end: Some(1),
            user_id: Some(1),
            username: Some(Match::Exact("u".into())),
            token_name: Some("t".into()),
            model_name: Some(Match::Exact("m".into())),
            channel: Some(3),
            group: Some("default".into()),
            request_id: Some("r".into()),
        };
        assert!(matches(&passing, &row));
        let failing: [fn(&mut LogFilter); 10] = [
            |f| f.log_type = Some(5),
            |f| f.start = Some(2),
            |f| f.end = Some(0),
            |f| f.user_id = Some(2),
            |f| f.username = Some(Match::Exact("v".into())),
            |f| f.token_name = Some("x".into()),
            |f| f.model_name = Some(Match::Exact("n".into())),
            |f| f.channel = Some(4),
            |f| f.group = Some("vip".into()),
            |f| f.request_id = Some("s".into()),
        ];
        for (i, change) in failing.iter().enumerate() {
            let mut filter = passing.clone();
            change(&mut filter);
            assert!(!matches(&filter, &row), "filter {i} let the row through");
        }
    }
}
