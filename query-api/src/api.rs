//! The handlers of new-api's log module, their response shapes and their OpenAPI description.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use logbus_projections::events::LOG_TYPE_CONSUME;
use logbus_projections::identity::hash_token_key;
use logbus_projections::rows::LogRow;
use logbus_projections::rows::identity_codes::STATUS_ENABLED;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::{AdminAuth, UserAuth, bearer};
use crate::error::{ApiError, BadInput, Failure};
use crate::params::{LogFilter, Page, Params};

/// new-api's response envelope.
#[derive(Debug, Serialize)]
pub struct Envelope<T> {
    pub success: bool,
    pub message: String,
    pub data: T,
}

pub type ApiResult<T> = Result<Json<Envelope<T>>, ApiError>;

fn ok<T>(data: T) -> ApiResult<T> {
    Ok(Json(Envelope {
        success: true,
        message: String::new(),
        data,
    }))
}

/// One log as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogItem {
    /// Display sequence number on this page: `(p-1)*page_size + i + 1`. Not stable: use
    /// `event_id` to identify a log.
    pub id: u64,
    /// Stable identity of the log (UUID).
    pub event_id: String,
    pub user_id: i64,
    /// Unix seconds.
    pub created_at: u32,
    /// 1 top-up, 2 consume, 3 manage, 4 system, 5 error, 6 refund, 7 login.
    #[serde(rename = "type")]
    pub log_type: u8,
    pub content: String,
    pub username: String,
    pub token_name: String,
    pub model_name: String,
    pub quota: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Seconds.
    pub use_time: i32,
    pub is_stream: bool,
    /// Channel id, under new-api's JSON name for it.
    pub channel: i64,
    /// The same channel id under the name the log-module documentation's example uses, so
    /// clients written against either naming work.
    pub channel_id: i64,
    /// Channel name; blank in the user view.
    pub channel_name: String,
    pub token_id: i64,
    pub group: String,
    /// Client IP; admin view only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// A JSON object serialized to a string; the user view lacks `admin_info` and `audit_info`.
    pub other: String,
    pub request_id: String,
}

/// Who is looking: users never see channel names, IPs or admin-only details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Admin,
    User,
}

const ADMIN_ONLY_OTHER_KEYS: [&str; 2] = ["admin_info", "audit_info"];

fn user_other(other: &str) -> String {
    if other.trim().is_empty() {
        return String::new();
    }
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(other) {
        Ok(mut map) => {
            for key in ADMIN_ONLY_OTHER_KEYS {
                map.remove(key);
            }
            serde_json::Value::Object(map).to_string()
        }
        // Not an object: show nothing rather than risk leaking admin details.
        Err(_) => String::new(),
    }
}

impl LogItem {
    pub fn new(row: LogRow, id: u64, view: View) -> Self {
        let admin = view == View::Admin;
        LogItem {
            id,
            event_id: row.event_id.to_string(),
            user_id: row.user_id,
            created_at: row.created_at,
            log_type: row.log_type,
            content: row.content,
            username: row.username,
            token_name: row.token_name,
            model_name: row.model_name,
            quota: row.quota,
            prompt_tokens: row.prompt_tokens,
            completion_tokens: row.completion_tokens,
            use_time: row.use_time,
            is_stream: row.is_stream,
            channel: row.channel_id,
            channel_id: row.channel_id,
            channel_name: if admin {
                row.channel_name
            } else {
                String::new()
            },
            token_id: row.token_id,
            group: row.group,
            ip: admin.then_some(row.ip),
            other: if admin {
                row.other
            } else {
                user_other(&row.other)
            },
            request_id: row.request_id,
        }
    }
}

fn items(rows: Vec<LogRow>, first_id: u64, view: View) -> Vec<LogItem> {
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| LogItem::new(row, first_id.saturating_add(i as u64 + 1), view))
        .collect()
}

/// A page of logs.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogPage {
    pub items: Vec<LogItem>,
    /// Exact number of logs matching the filters.
    pub total: u64,
    /// Effective page number.
    pub page: u64,
    /// Effective page size.
    pub page_size: u64,
}

/// Usage statistics.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatData {
    /// Sum of quota over the filters and time range.
    pub quota: i64,
    /// Logs in the last 60 seconds.
    pub rpm: u64,
    /// Prompt + completion tokens in the last 60 seconds.
    pub tpm: i64,
}

// Concrete envelopes, for the OpenAPI document only.

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LogPageResponse {
    success: bool,
    message: String,
    data: LogPage,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct LogListResponse {
    success: bool,
    message: String,
    data: Vec<LogItem>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct StatResponse {
    success: bool,
    message: String,
    data: StatData,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct DeleteResponse {
    success: bool,
    message: String,
    /// Number of log rows deleted.
    data: u64,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct HealthResponse {
    success: bool,
    message: String,
    data: String,
}

/// A refusal or failure. The message is Chinese unless `Accept-Language` prefers English.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorResponse {
    /// Always false.
    success: bool,
    message: String,
}

/// Paging and time filters of the list endpoints (with [`DimensionQuery`]). Unknown
/// parameters are ignored.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListQuery {
    /// Page number, 1-based; absent, unparsable or < 1 means 1.
    p: Option<i64>,
    /// Page size, default 20; absent, unparsable or < 1 means 20; above 100 means 100.
    page_size: Option<i64>,
    /// Log type (1 top-up, 2 consume, 3 manage, 4 system, 5 error, 6 refund, 7 login); 0 or absent: all.
    r#type: Option<i64>,
    /// Unix seconds, inclusive; 0 or absent: unbounded.
    start_timestamp: Option<i64>,
    /// Unix seconds, inclusive; 0 or absent: unbounded.
    end_timestamp: Option<i64>,
}

/// Type and time filters of the stat endpoints (with [`DimensionQuery`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct StatQuery {
    /// Log type to count; 0 or absent: consumption logs (2).
    r#type: Option<i64>,
    /// Unix seconds, inclusive; 0 or absent: unbounded. Applies to quota only.
    start_timestamp: Option<i64>,
    /// Unix seconds, inclusive; 0 or absent: unbounded. Applies to quota only.
    end_timestamp: Option<i64>,
}

/// The filters the list and stat endpoints share.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct DimensionQuery {
    /// Exact username, or a LIKE pattern with `%` (at most 2, no `%%`, at least 2 other characters). Admin endpoints only.
    username: Option<String>,
    /// Exact token name.
    token_name: Option<String>,
    /// Exact model name, or a LIKE pattern with `%` (rules as for username).
    model_name: Option<String>,
    /// Channel id; 0 or absent: all.
    channel: Option<i64>,
    /// Exact group.
    group: Option<String>,
    /// Exact request id.
    request_id: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SearchQuery {
    /// A number matches the log type; any keyword matches content as a case-insensitive,
    /// literal substring.
    keyword: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TokenQuery {
    /// Token key, with or without `sk-`. May instead be sent as `Authorization: Bearer sk-...`.
    key: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct DeleteQuery {
    /// Unix seconds: logs with `created_at` before it are deleted. Required, 1..=4294967295.
    target_timestamp: Option<i64>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

async fn page_of(
    state: &AppState,
    filter: LogFilter,
    page: Page,
    view: View,
) -> ApiResult<LogPage> {
    let (rows, total) = state
        .store()
        .list(&filter, page.page_size, page.offset())
        .await
        .map_err(ApiError::db(Failure::Logs))?;
    ok(LogPage {
        items: items(rows, page.offset(), view),
        total,
        page: page.page,
        page_size: page.page_size,
    })
}

/// All logs (admin).
#[utoipa::path(get, path = "/api/log/", tag = "admin", params(ListQuery, DimensionQuery),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = LogPageResponse), (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 500, body = ErrorResponse)))]
pub async fn list_all(
    State(state): State<AppState>,
    _admin: AdminAuth,
    params: Params,
) -> ApiResult<LogPage> {
    let filter = LogFilter::from_params(&params, true)?;
    page_of(&state, filter, Page::from_params(&params), View::Admin).await
}

/// The caller's logs (user).
#[utoipa::path(get, path = "/api/log/self", tag = "user", params(ListQuery, DimensionQuery),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = LogPageResponse), (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 500, body = ErrorResponse)))]
pub async fn list_self(
    State(state): State<AppState>,
    UserAuth(user): UserAuth,
    params: Params,
) -> ApiResult<LogPage> {
    let mut filter = LogFilter::from_params(&params, false)?;
    filter.user_id = Some(user.id);
    page_of(&state, filter, Page::from_params(&params), View::User).await
}

async fn stat_of(state: &AppState, mut filter: LogFilter) -> ApiResult<StatData> {
    filter.log_type = filter.log_type.or(Some(i64::from(LOG_TYPE_CONSUME)));
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
#[utoipa::path(get, path = "/api/log/stat", tag = "admin", params(StatQuery, DimensionQuery),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = StatResponse), (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 500, body = ErrorResponse)))]
pub async fn stat_all(
    State(state): State<AppState>,
    _admin: AdminAuth,
    params: Params,
) -> ApiResult<StatData> {
    stat_of(&state, LogFilter::from_params(&params, true)?).await
}

/// Usage statistics over the caller's logs (user).
#[utoipa::path(get, path = "/api/log/self/stat", tag = "user", params(StatQuery, DimensionQuery),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = StatResponse), (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 500, body = ErrorResponse)))]
pub async fn stat_self(
    State(state): State<AppState>,
    UserAuth(user): UserAuth,
    params: Params,
) -> ApiResult<StatData> {
    let mut filter = LogFilter::from_params(&params, false)?;
    filter.user_id = Some(user.id);
    stat_of(&state, filter).await
}

async fn search_of(
    state: &AppState,
    user_id: Option<i64>,
    params: &Params,
    view: View,
) -> ApiResult<Vec<LogItem>> {
    let keyword = params.string("keyword")?.unwrap_or_default();
    let rows = state
        .store()
        .search(user_id, &keyword)
        .await
        .map_err(ApiError::db(Failure::Search))?;
    ok(items(rows, 0, view))
}

/// Search all logs by type or content (admin); newest first, at most 100.
#[utoipa::path(get, path = "/api/log/search", tag = "admin", params(SearchQuery),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = LogListResponse), (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 500, body = ErrorResponse)))]
pub async fn search_all(
    State(state): State<AppState>,
    _admin: AdminAuth,
    params: Params,
) -> ApiResult<Vec<LogItem>> {
    search_of(&state, None, &params, View::Admin).await
}

/// Search the caller's logs by type or content (user); newest first, at most 100.
#[utoipa::path(get, path = "/api/log/self/search", tag = "user", params(SearchQuery),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = LogListResponse), (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 500, body = ErrorResponse)))]
pub async fn search_self(
    State(state): State<AppState>,
    UserAuth(user): UserAuth,
    params: Params,
) -> ApiResult<Vec<LogItem>> {
    search_of(&state, Some(user.id), &params, View::User).await
}

/// The logs of one API token (public, CORS-enabled); newest first, at most 1000.
#[utoipa::path(get, path = "/api/log/token", tag = "public", params(TokenQuery),
    responses((status = 200, body = LogListResponse), (status = 400, body = ErrorResponse),
        (status = 401, description = "Unknown or disabled key: Token不存在或无权限", body = ErrorResponse),
        (status = 500, body = ErrorResponse)))]
pub async fn token_logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Vec<LogItem>> {
    let key = match params.string("key")? {
        Some(key) => Some(key),
        None => bearer(&headers).ok().flatten(),
    };
    let key = key
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .ok_or(ApiError::TokenNotFound)?;
    let token = state
        .identity()
        .token(&hash_token_key(&key))
        .await
        .map_err(ApiError::db(Failure::Logs))?
        .filter(|token| token.status == STATUS_ENABLED)
        .ok_or(ApiError::TokenNotFound)?;
    let rows = state
        .store()
        .token_logs(&token)
        .await
        .map_err(ApiError::db(Failure::Logs))?;
    ok(items(rows, 0, View::User))
}

/// Delete logs older than `target_timestamp` (admin); returns the number of logs deleted.
#[utoipa::path(delete, path = "/api/log/", tag = "admin", params(DeleteQuery),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = DeleteResponse),
        (status = 400, description = "target timestamp is required", body = ErrorResponse),
        (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 500, body = ErrorResponse)))]
pub async fn delete_before(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    params: Params,
) -> ApiResult<u64> {
    let target = match params.int("target_timestamp")? {
        None | Some(0) => return Err(BadInput::TargetTimestampRequired.into()),
        Some(t) if !(1..=i64::from(u32::MAX)).contains(&t) => {
            return Err(BadInput::out_of_range(
                "target_timestamp",
                &t.to_string(),
                1,
                u32::MAX.into(),
            )
            .into());
        }
        Some(t) => t as u32,
    };
    let _one_at_a_time = state.delete_lock().lock().await;
    let deleted = state
        .store()
        .delete_before(target)
        .await
        .map_err(ApiError::db(Failure::Delete))?;
    tracing::info!(admin = admin.id, target, deleted, "deleted logs");
    ok(deleted)
}

/// Readiness: ClickHouse answers.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, body = HealthResponse), (status = 500, body = ErrorResponse)))]
pub async fn healthz(State(state): State<AppState>) -> ApiResult<&'static str> {
    state
        .store()
        .ping()
        .await
        .map_err(ApiError::db(Failure::Health))?;
    ok("ok")
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "OpenAPI 3 document")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(<crate::ApiDoc as utoipa::OpenApi>::openapi())
}

/// Unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Known paths with a method they do not serve.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_view_hides_admin_details() {
        let row = LogRow {
            event_id: uuid::Uuid::nil(),
            created_at: 1,
            log_type: 2,
            user_id: 1,
            username: "u".into(),
            token_id: 1,
            token_name: "t".into(),
            model_name: "m".into(),
            quota: 1,
            prompt_tokens: 1,
            completion_tokens: 1,
            use_time: 1,
            is_stream: false,
            channel_id: 3,
            channel_name: "secret channel".into(),
            group: "default".into(),
            ip: "10.0.0.1".into(),
            request_id: "r".into(),
            upstream_request_id: String::new(),
            content: "c".into(),
            other: r#"{"admin_info":{"x":1},"audit_info":"a","model_ratio":2}"#.into(),
            ingest_batch: 0,
        };
        let user = serde_json::to_value(LogItem::new(row.clone(), 1, View::User)).unwrap();
        assert_eq!(user["channel_name"], "");
        assert!(user.get("ip").is_none());
        assert_eq!(user["other"], r#"{"model_ratio":2}"#);
        assert_eq!(user["channel"], 3);
        assert_eq!(user["channel_id"], 3);
        let admin = serde_json::to_value(LogItem::new(row, 1, View::Admin)).unwrap();
        assert_eq!(admin["ip"], "10.0.0.1");
        assert_eq!(admin["channel_name"], "secret channel");
    }
}
