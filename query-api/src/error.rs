//! The one error type of the API and its mapping to new-api's JSON envelope.
//!
//! Every failure becomes `{"success":false,"message":"..."}` here and nowhere else. Internal
//! details (ClickHouse errors, timeouts) are logged with full detail and answered with the
//! generic message new-api uses for that operation ([`crate::views::ErrorResponse`] is the
//! body). Messages are Chinese, like new-api, unless the request's `Accept-Language` prefers
//! English (see [`Lang`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::session::SessionError;

mod bad_input;
mod delete;

use crate::views::ErrorResponse;
pub use bad_input::{BadInput, PatternProblem};
pub use delete::{DeleteBusy, DeleteIncomplete};

/// The language of error messages for the current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Zh,
    En,
}

tokio::task_local! {
    /// Set for the duration of each request by [`crate::routes::language_scope`].
    pub static LANG: Lang;
}

/// The language of the request being handled (Chinese outside a request).
pub fn current_lang() -> Lang {
    LANG.try_with(|lang| *lang).unwrap_or(Lang::Zh)
}

impl Lang {
    /// Picks English when the most preferred language of an `Accept-Language` header (highest
    /// `q`, earliest on ties) is English; Chinese otherwise, including when absent or unreadable.
    pub fn from_accept_language(header: Option<&str>) -> Lang {
        let Some(header) = header else {
            return Lang::Zh;
        };
        let mut best: Option<(f32, &str)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or("").trim();
            if tag.is_empty() {
                continue;
            }
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            if q <= 0.0 {
                continue;
            }
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, tag));
            }
        }
        match best {
            Some((_, tag)) if tag.len() >= 2 && tag[..2].eq_ignore_ascii_case("en") => Lang::En,
            _ => Lang::Zh,
        }
    }

    fn pick(self, zh: impl Into<String>, en: impl Into<String>) -> String {
        match self {
            Lang::Zh => zh.into(),
            Lang::En => en.into(),
        }
    }
}

/// Which operation failed: selects the generic message shown to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Logs,
    Stat,
    Search,
    Export,
    Delete,
    Identity,
    Health,
    Data,
}

impl Failure {
    fn message(self, lang: Lang) -> String {
        match self {
            Failure::Logs => lang.pick("获取日志失败", "Failed to get logs"),
            Failure::Stat => lang.pick("获取统计信息失败", "Failed to get statistics"),
            Failure::Search => lang.pick("搜索日志失败", "Failed to search logs"),
            Failure::Export => lang.pick("导出日志失败", "Failed to export logs"),
            Failure::Delete => lang.pick("删除日志失败", "Failed to delete logs"),
            Failure::Identity => lang.pick("验证身份失败", "Failed to verify identity"),
            Failure::Health => lang.pick("ClickHouse 不可用", "ClickHouse is unavailable"),
            Failure::Data => lang.pick("获取用量数据失败", "Failed to get usage data"),
        }
    }
}

/// A failed ClickHouse round trip. Cloneable so that the identity cache can share it between
/// the requests waiting for the same lookup.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    #[error("clickhouse: {0}")]
    ClickHouse(Arc<clickhouse::error::Error>),
    #[error("query timed out after {0:?}")]
    Timeout(Duration),
}

impl From<clickhouse::error::Error> for DbError {
    fn from(error: clickhouse::error::Error) -> Self {
        DbError::ClickHouse(Arc::new(error))
    }
}

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no access token")]
    NoAccessToken,
    #[error("invalid access token")]
    InvalidAccessToken,
    #[error("New-Api-User header missing")]
    MissingUserHeader,
    #[error("New-Api-User header malformed")]
    MalformedUserHeader,
    #[error("New-Api-User does not match the access token")]
    UserMismatch,
    #[error("user is disabled")]
    UserDisabled,
    #[error("role too low")]
    Forbidden,
    #[error("unknown or disabled token key")]
    TokenNotFound,
    #[error("bad request: {0}")]
    BadRequest(#[from] BadInput),
    #[error("{what:?} failed: {source}")]
    Database {
        what: Failure,
        #[source]
        source: DbError,
    },
    #[error("session cookie: {0}")]
    Session(#[from] SessionError),
    #[error("request target too long")]
    UriTooLong,
    #[error("request headers too large")]
    HeadersTooLarge,
    #[error("too many requests at once")]
    Overloaded,
    #[error("request took too long")]
    RequestTimeout,
    #[error("another retention delete holds the lock")]
    DeleteBusy(#[from] DeleteBusy),
    #[error("retention delete incomplete: {0}")]
    DeleteIncomplete(#[from] DeleteIncomplete),
    #[error("too many failed authentications from this client")]
    AuthThrottled { retry_after: Duration },
    #[error("too many live tails open (per user: {per_user}, at most {max})")]
    TailLimit { per_user: bool, max: usize },
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
}

impl ApiError {
    pub fn db(what: Failure) -> impl FnOnce(DbError) -> ApiError {
        move |source| ApiError::Database { what, source }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NoAccessToken
            | ApiError::InvalidAccessToken
            | ApiError::MissingUserHeader
            | ApiError::MalformedUserHeader
            | ApiError::UserMismatch
            | ApiError::TokenNotFound => StatusCode::UNAUTHORIZED,
            ApiError::Session(SessionError::Refused(_)) => StatusCode::UNAUTHORIZED,
            ApiError::Session(SessionError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::UserDisabled | ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Database {
                source: DbError::Timeout(_),
                ..
            } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Database { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::DeleteBusy(_) => StatusCode::CONFLICT,
            ApiError::DeleteIncomplete(DeleteIncomplete {
                source: Some(DbError::Timeout(_)),
                ..
            }) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::DeleteIncomplete(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UriTooLong => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::AuthThrottled { .. } | ApiError::TailLimit { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::RequestTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The message shown to the caller: never internal details.
    pub fn message(&self, lang: Lang) -> String {
        match self {
            ApiError::NoAccessToken => lang.pick(
                "无权进行此操作，未登录且未提供 access token",
                "Unauthorized: not logged in and no access token provided",
            ),
            ApiError::InvalidAccessToken => lang.pick(
                "无权进行此操作，access token 无效",
                "Unauthorized: invalid access token",
            ),
            ApiError::MissingUserHeader => lang.pick(
                "无权进行此操作，未提供 New-Api-User",
                "Unauthorized: the New-Api-User header is missing",
            ),
            ApiError::MalformedUserHeader => lang.pick(
                "无权进行此操作，New-Api-User 格式错误",
                "Unauthorized: the New-Api-User header is not a user id",
            ),
            ApiError::UserMismatch => lang.pick(
                "无权进行此操作，New-Api-User 与 access token 不匹配",
                "Unauthorized: New-Api-User does not match the access token",
            ),
            ApiError::UserDisabled => lang.pick("用户已被封禁", "The user has been banned"),
            ApiError::Forbidden => lang.pick(
                "无权进行此操作，权限不足",
                "Forbidden: insufficient privileges",
            ),
            ApiError::TokenNotFound => lang.pick(
                "Token不存在或无权限",
                "The token does not exist or has no permission",
            ),
            // new-api's own reason stays in the log: it may name what the session held.
            ApiError::Session(SessionError::Refused(_)) => lang.pick(
                "无权进行此操作，登录已失效，请重新登录",
                "Unauthorized: the session is not valid, log in again",
            ),
            ApiError::Session(SessionError::Unavailable(_)) => lang.pick(
                "暂时无法验证登录状态，请稍后重试",
                "The session cannot be verified right now, try again later",
            ),
            ApiError::BadRequest(bad) => bad.message(lang),
            ApiError::Database { what, .. } => what.message(lang),
            ApiError::DeleteBusy(busy) => busy.message(lang),
            ApiError::DeleteIncomplete(incomplete) => incomplete.message(lang),
            ApiError::NotFound => lang.pick("接口不存在", "No such endpoint"),
            ApiError::UriTooLong => lang.pick("请求地址过长", "The request target is too long"),
            ApiError::HeadersTooLarge => {
                lang.pick("请求头过大", "The request headers are too large")
            }
            ApiError::Overloaded => lang.pick(
                "服务器繁忙，请稍后重试",
                "The server is busy, try again later",
            ),
            ApiError::RequestTimeout => lang.pick("请求处理超时", "The request took too long"),
            ApiError::AuthThrottled { retry_after } => {
                let secs = retry_after_secs(*retry_after);
                lang.pick(
                    format!("身份验证失败次数过多，请 {secs} 秒后重试"),
                    format!("Too many failed authentications, try again in {secs} s"),
                )
            }
            ApiError::TailLimit { per_user: true, max } => lang.pick(
                format!("该用户的实时日志连接已达上限（{max} 个）：请先关闭其他实时日志页面"),
                format!("this user already has {max} live tails open, the most allowed: close another first"),
            ),
            ApiError::TailLimit { per_user: false, max } => lang.pick(
                format!("实时日志连接已达服务器上限（{max} 个），请稍后重试"),
                format!("the server has {max} live tails open, the most allowed: try again later"),
            ),
            ApiError::MethodNotAllowed => {
                lang.pick("不支持的请求方法", "Method not allowed for this endpoint")
            }
        }
    }
}

/// Whole seconds to wait, rounded up (`Retry-After` takes no fractions, and 0 means now).
fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Database { what, source } => {
                tracing::error!(operation = ?what, error = %source, "request failed in ClickHouse");
            }
            ApiError::DeleteIncomplete(incomplete) => {
                tracing::error!(error = ?incomplete.source, %incomplete, "retention delete incomplete");
            }
            ApiError::Session(SessionError::Unavailable(why)) => {
                tracing::warn!(error = %why, "new-api could not verify a session cookie");
            }
            ApiError::Session(SessionError::Refused(why)) => {
                tracing::debug!(reason = %why, "new-api refused a session cookie");
            }
            _ => {}
        }
        let body = ErrorResponse {
            message: self.message(current_lang()),
            success: false,
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let ApiError::AuthThrottled { retry_after } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after_secs(retry_after).into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_prefers_the_highest_weight() {
        assert_eq!(Lang::from_accept_language(None), Lang::Zh);
        assert_eq!(Lang::from_accept_language(Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(Lang::from_accept_language(Some("zh-CN,en;q=0.8")), Lang::Zh);
        assert_eq!(
            Lang::from_accept_language(Some("zh;q=0.5, en;q=0.9")),
            Lang::En
        );
        assert_eq!(Lang::from_accept_language(Some("en;q=0, fr")), Lang::Zh);
        assert_eq!(Lang::from_accept_language(Some("garbage;;;")), Lang::Zh);
        assert_eq!(Lang::from_accept_language(Some("EN")), Lang::En);
    }

    #[test]
    fn internal_details_never_reach_the_message() {
        let error = ApiError::Database {
            what: Failure::Logs,
            source: DbError::Timeout(Duration::from_secs(1)),
        };
        assert_eq!(error.message(Lang::Zh), "获取日志失败");
        assert_eq!(error.status(), StatusCode::GATEWAY_TIMEOUT);
    }
}
