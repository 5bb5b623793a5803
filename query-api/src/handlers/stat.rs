//! `GET /api/log/stat` and `/api/log/self/stat`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;

use super::{ApiResult, ok};
use crate::auth::{AdminAuth, UserAuth};
use crate::error::{ApiError, Failure};
use crate::params::{LogFilter, Params, StatFilter};
use crate::state::AppState;
use crate::views::{ErrorResponses, SignedIn, StatData, StatResponse};

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

async fn stat_of(state: &AppState, filter: LogFilter) -> ApiResult<StatData> {
    let stat = state
        .store()
        .stat(&filter, unix_now())
        .await
        .map_err(ApiError::db(Failure::Stat))?;
    ok(StatData {
        quota: stat.quota,
        rpm: stat.rpm,
        tpm: stat.tpm,
    })
}

/// Usage statistics over all logs (admin).
#[utoipa::path(get, path = "/api/log/stat", tag = "admin", params(StatFilter),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = StatResponse), ErrorResponses<SignedIn>))]
pub async fn stat_all(
    State(state): State<AppState>,
    _admin: AdminAuth,
    params: Params,
) -> ApiResult<StatData> {
    let StatFilter(filter) = StatFilter::from_params(&params, true)?;
    stat_of(&state, filter).await
}

/// Usage statistics over the caller's logs (user).
#[utoipa::path(get, path = "/api/log/self/stat", tag = "user", params(StatFilter),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = StatResponse), ErrorResponses<SignedIn>))]
pub async fn stat_self(
    State(state): State<AppState>,
    UserAuth(user): UserAuth,
    params: Params,
) -> ApiResult<StatData> {
    let StatFilter(mut filter) = StatFilter::from_params(&params, false)?;
    filter.user_id = Some(user.id);
    stat_of(&state, filter).await
}
