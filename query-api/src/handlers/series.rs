//! `GET /api/log/stat/series` (admin) and `/api/log/self/stat/series` (user): the stat as
//! a time series, grouped and ranked (a logbus extension).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;

use super::{ApiResult, ok};
use crate::auth::{AdminAuth, UserAuth};
use crate::error::{ApiError, Failure};
use crate::params::{Params, SeriesFilter, SeriesOptions, SeriesQuery};
use crate::state::AppState;
use crate::store::series::fold_series;
use crate::store::series_plan::{effective_range, plan};
use crate::views::{ErrorResponses, SeriesData, SeriesResponse, SignedIn};

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

async fn series_of(state: &AppState, query: SeriesQuery) -> ApiResult<SeriesData> {
    let now = unix_now();
    let range = effective_range(&query, now);
    let (start, end) = range.unwrap_or((
        query.filter.start.unwrap_or(0),
        query.filter.end.unwrap_or(now),
    ));
    let series = match range {
        None => Vec::new(),
        Some((start, end)) => {
            let plan = plan(&query, start, end)?;
            let rows = state
                .store()
                .series(&plan)
                .await
                .map_err(ApiError::db(Failure::Stat))?;
            fold_series(rows, &query.group_by)?
        }
    };
    ok(SeriesData {
        interval: query.interval.name(),
        tz: query.tz.name().to_owned(),
        group_by: query.group_by.iter().map(|d| d.name()).collect(),
        start_timestamp: start,
        end_timestamp: end,
        series,
    })
}

/// Usage over time (admin): the stat's filters, bucketed by `interval`, optionally grouped by
/// up to two dimensions and cut to the `top` N series.
#[utoipa::path(get, path = "/api/log/stat/series", tag = "admin",
    params(SeriesFilter, SeriesOptions),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = SeriesResponse), ErrorResponses<SignedIn>))]
pub async fn series_all(
    State(state): State<AppState>,
    _admin: AdminAuth,
    params: Params,
) -> ApiResult<SeriesData> {
    series_of(&state, SeriesQuery::from_params(&params, true)?).await
}

/// Usage over time of the caller's logs (user); `username` is ignored.
#[utoipa::path(get, path = "/api/log/self/stat/series", tag = "user",
    params(SeriesFilter, SeriesOptions),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = SeriesResponse), ErrorResponses<SignedIn>))]
pub async fn series_self(
    State(state): State<AppState>,
    UserAuth(user): UserAuth,
    params: Params,
) -> ApiResult<SeriesData> {
    let mut query = SeriesQuery::from_params(&params, false)?;
    query.filter.user_id = Some(user.id);
    series_of(&state, query).await
}
