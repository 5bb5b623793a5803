//! `GET /api/log/`, `/api/log/self`, `/api/log/search` and `/api/log/self/search`.

use axum::extract::State;

use super::{ApiResult, ok};
use crate::auth::{AdminAuth, UserAuth};
use crate::error::{ApiError, Failure};
use crate::params::{CursorParam, Keyword, LogFilter, Page, Pagination, Params};
use crate::state::AppState;
use crate::views::{
    ErrorResponses, LogItem, LogListResponse, LogPage, LogPageResponse, SignedIn, View, items,
};

async fn page_of(
    state: &AppState,
    filter: LogFilter,
    pagination: Pagination,
    view: View,
) -> ApiResult<LogPage> {
    let page = state
        .store()
        .list(&filter, &pagination)
        .await
        .map_err(ApiError::db(Failure::Logs))?;
    ok(LogPage {
        items: items(page.rows, pagination.skipped(), view),
        total: page.total,
        page: pagination.page(),
        page_size: pagination.page_size(),
        next_cursor: page.next.map(|cursor| cursor.encode()),
    })
}

/// All logs (admin).
#[utoipa::path(get, path = "/api/log/", tag = "admin", params(Page, CursorParam, LogFilter),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = LogPageResponse), ErrorResponses<SignedIn>))]
pub async fn list_all(
    State(state): State<AppState>,
    _admin: AdminAuth,
    params: Params,
) -> ApiResult<LogPage> {
    let filter = LogFilter::from_params(&params, true)?;
    page_of(
        &state,
        filter,
        Pagination::from_params(&params)?,
        View::Admin,
    )
    .await
}

/// The caller's logs (user).
#[utoipa::path(get, path = "/api/log/self", tag = "user", params(Page, CursorParam, LogFilter),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = LogPageResponse), ErrorResponses<SignedIn>))]
pub async fn list_self(
    State(state): State<AppState>,
    UserAuth(user): UserAuth,
    params: Params,
) -> ApiResult<LogPage> {
    let mut filter = LogFilter::from_params(&params, false)?;
    filter.user_id = Some(user.id);
    page_of(
        &state,
        filter,
        Pagination::from_params(&params)?,
        View::User,
    )
    .await
}

async fn search_of(
    state: &AppState,
    user_id: Option<i64>,
    params: &Params,
    view: View,
) -> ApiResult<Vec<LogItem>> {
    let Keyword { keyword } = Keyword::from_params(params)?;
    let rows = state
        .store()
        .search(user_id, &keyword)
        .await
        .map_err(ApiError::db(Failure::Search))?;
    ok(items(rows, 0, view))
}

/// Search all logs by type or content (admin); newest first, at most 100.
#[utoipa::path(get, path = "/api/log/search", tag = "admin", params(Keyword),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = LogListResponse), ErrorResponses<SignedIn>))]
pub async fn search_all(
    State(state): State<AppState>,
    _admin: AdminAuth,
    params: Params,
) -> ApiResult<Vec<LogItem>> {
    search_of(&state, None, &params, View::Admin).await
}

/// Search the caller's logs by type or content (user); newest first, at most 100.
#[utoipa::path(get, path = "/api/log/self/search", tag = "user", params(Keyword),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = LogListResponse), ErrorResponses<SignedIn>))]
pub async fn search_self(
    State(state): State<AppState>,
    UserAuth(user): UserAuth,
    params: Params,
) -> ApiResult<Vec<LogItem>> {
    search_of(&state, Some(user.id), &params, View::User).await
}
