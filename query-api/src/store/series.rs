//! The time series: runs [`super::series_plan`]'s statement and folds its rows (one per
//! bucket and series) into series, largest first.

use std::collections::BTreeMap;

use clickhouse::Row;
use serde::Deserialize;

use super::Store;
use super::series_plan::{MAX_POINTS, SeriesPlan};
use crate::error::{BadInput, DbError};
use crate::params::Dimension;
use crate::views::{Series, SeriesKey, SeriesPoint, Usage};

/// One bucket of one series as the plan's statement returns it; dimensions that are not
/// grouped (and all of them on the `other` series) hold `""` or 0.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct SeriesRow {
    pub t: u32,
    /// 1 for the kept series, 0 for `other`.
    pub kept: u8,
    pub model_name: String,
    pub user_id: i64,
    pub token_id: i64,
    pub channel_id: i64,
    pub group_name: String,
    pub username: String,
    pub token_name: String,
    pub requests: u64,
    pub quota: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

impl SeriesRow {
    fn usage(&self) -> Usage {
        Usage {
            requests: self.requests,
            quota: self.quota,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
        }
    }

    /// The identity of the row's series (names are labels, not part of it).
    fn identity(&self) -> (bool, String, i64, i64, i64, String) {
        (
            self.kept == 0,
            self.model_name.clone(),
            self.user_id,
            self.token_id,
            self.channel_id,
            self.group_name.clone(),
        )
    }

    /// The key shown for the row's series, with the dimensions of `group_by` only.
    fn key(&self, group_by: &[Dimension]) -> SeriesKey {
        if self.kept == 0 {
            return SeriesKey::default();
        }
        let mut key = SeriesKey::default();
        for dimension in group_by {
            match dimension {
                Dimension::Model => key.model_name = Some(self.model_name.clone()),
                Dimension::User => {
                    key.user_id = Some(self.user_id);
                    key.username = Some(self.username.clone());
                }
                Dimension::Token => {
                    key.token_id = Some(self.token_id);
                    key.token_name = Some(self.token_name.clone());
                }
                Dimension::Channel => key.channel = Some(self.channel_id),
                Dimension::Group => key.group = Some(self.group_name.clone()),
            }
        }
        key
    }
}

/// Folds rows (ascending by bucket) into series: points ascending, names from each series'
/// latest bucket, series by quota, then requests, then key, with `other` last. More than
/// [`MAX_POINTS`] rows is refused.
pub fn fold_series(rows: Vec<SeriesRow>, group_by: &[Dimension]) -> Result<Vec<Series>, BadInput> {
    if rows.len() as u64 > MAX_POINTS {
        return Err(BadInput::TooManyPoints { max: MAX_POINTS });
    }
    let mut by_identity: BTreeMap<_, Series> = BTreeMap::new();
    for row in rows {
        let series = by_identity.entry(row.identity()).or_insert_with(|| Series {
            key: SeriesKey::default(),
            other: row.kept == 0,
            total: Usage::default(),
            points: Vec::new(),
        });
        // Rows come in bucket order: the last one names the series.
        series.key = row.key(group_by);
        series.total.add(row.usage());
        series.points.push(SeriesPoint {
            t: i64::from(row.t),
            usage: row.usage(),
        });
    }
    let mut series: Vec<Series> = by_identity.into_values().collect();
    for s in &mut series {
        s.points.sort_by_key(|p| p.t);
    }
    series.sort_by(|a, b| {
        a.other
            .cmp(&b.other)
            .then(b.total.quota.cmp(&a.total.quota))
            .then(b.total.requests.cmp(&a.total.requests))
            .then(a.key.cmp(&b.key))
    });
    Ok(series)
}

impl Store {
    /// The rows of a planned series, ascending by bucket (at most `MAX_POINTS + 1`).
    pub async fn series(&self, plan: &SeriesPlan) -> Result<Vec<SeriesRow>, DbError> {
        self.timed(
            "series",
            self.query(&plan.sql, &plan.conditions)
                .fetch_all::<SeriesRow>(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t: u32, kept: u8, model: &str, user: (i64, &str), quota: i64) -> SeriesRow {
        SeriesRow {
            t,
            kept,
            model_name: model.into(),
            user_id: user.0,
            token_id: 0,
            channel_id: 0,
            group_name: String::new(),
            username: user.1.into(),
            token_name: String::new(),
            requests: 1,
            quota,
            prompt_tokens: 2,
            completion_tokens: 3,
        }
    }

    #[test]
    fn rows_fold_into_ordered_series_with_other_last() {
        let group_by = [Dimension::Model, Dimension::User];
        let rows = vec![
            row(0, 0, "", (0, ""), 1000),
            row(0, 1, "a", (1, "old-name"), 5),
            row(0, 1, "b", (2, "bob"), 7),
            row(60, 1, "a", (1, "alice"), 5),
        ];
        let series = fold_series(rows, &group_by).expect("folds");
        assert_eq!(series.len(), 3);
        // a/alice: quota 10 beats b/bob's 7; other is last despite its 1000.
        assert_eq!(series[0].key.model_name.as_deref(), Some("a"));
        assert_eq!(
            series[0].key.username.as_deref(),
            Some("alice"),
            "latest name"
        );
        assert_eq!(series[0].total.quota, 10);
        assert_eq!(series[0].total.requests, 2);
        assert_eq!(
            series[0].points.iter().map(|p| p.t).collect::<Vec<_>>(),
            [0, 60]
        );
        assert_eq!(series[1].key.user_id, Some(2));
        assert!(series[2].other);
        assert_eq!(series[2].key, SeriesKey::default());
        // Only the grouped dimensions are shown.
        assert_eq!(series[1].key.token_id, None);
    }

    #[test]
    fn too_many_points_are_refused() {
        let rows = vec![row(0, 1, "", (0, ""), 1); MAX_POINTS as usize + 1];
        assert_eq!(
            fold_series(rows, &[]),
            Err(BadInput::TooManyPoints { max: MAX_POINTS })
        );
    }
}
