//! new-api's dashboard endpoints: `GET /api/data/` (admin), `/api/data/users` (admin) and
//! `/api/data/self` (user).

use axum::extract::State;

use super::{ApiResult, ok};
use crate::auth::{AdminAuth, UserAuth};
use crate::error::{ApiError, Failure};
use crate::params::{DataRange, DataUser, Params};
use crate::state::AppState;
use crate::store::dashboard::{DataGrouping, DataRow};
use crate::views::{ErrorResponses, QuotaDataItem, QuotaDataResponse, SignedIn, SignedInMonth};

async fn rows_of(
    state: &AppState,
    grouping: DataGrouping,
    range: DataRange,
) -> ApiResult<Vec<QuotaDataItem>> {
    // Rows of one user are numbered like new-api's raw quota_data rows carry ids; rows
    // aggregated over users have id 0 there too.
    let numbered = matches!(grouping, DataGrouping::Username(_) | DataGrouping::User(_));
    let rows = state
        .store()
        .quota_data(&grouping, range.start, range.end)
        .await
        .map_err(ApiError::db(Failure::Data))?;
    ok(rows
        .into_iter()
        .enumerate()
        .map(|(i, row)| item(row, if numbered { i as u64 + 1 } else { 0 }))
        .collect())
}

fn item(row: DataRow, id: u64) -> QuotaDataItem {
    QuotaDataItem {
        id,
        user_id: row.user_id,
        username: row.username,
        model_name: row.model_name,
        created_at: i64::from(row.created_at),
        token_used: row.token_used,
        count: row.count,
        quota: row.quota,
    }
}

/// Consumption per model and hour over all users, or one username's rows per model and hour
/// (admin; new-api's dashboard).
#[utoipa::path(get, path = "/api/data/", tag = "admin", params(DataRange, DataUser),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = QuotaDataResponse), ErrorResponses<SignedIn>))]
pub async fn data_all(
    State(state): State<AppState>,
    _admin: AdminAuth,
    params: Params,
) -> ApiResult<Vec<QuotaDataItem>> {
    let range = DataRange::from_params(&params)?;
    let grouping = match DataUser::from_params(&params)?.username {
        Some(username) => DataGrouping::Username(username),
        None => DataGrouping::Models,
    };
    rows_of(&state, grouping, range).await
}

/// Consumption per username and hour (admin; new-api's dashboard).
#[utoipa::path(get, path = "/api/data/users", tag = "admin", params(DataRange),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = QuotaDataResponse), ErrorResponses<SignedIn>))]
pub async fn data_users(
    State(state): State<AppState>,
    _admin: AdminAuth,
    params: Params,
) -> ApiResult<Vec<QuotaDataItem>> {
    rows_of(
        &state,
        DataGrouping::Users,
        DataRange::from_params(&params)?,
    )
    .await
}

/// The caller's consumption per model and hour, over at most 30 days (user; new-api's
/// dashboard).
#[utoipa::path(get, path = "/api/data/self", tag = "user", params(DataRange),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = QuotaDataResponse), ErrorResponses<SignedInMonth>))]
pub async fn data_self(
    State(state): State<AppState>,
    UserAuth(user): UserAuth,
    params: Params,
) -> ApiResult<Vec<QuotaDataItem>> {
    let range = DataRange::from_params(&params)?.within_a_month()?;
    rows_of(&state, DataGrouping::User(user.id), range).await
}
