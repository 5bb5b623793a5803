//! What responses look like: a log as the admin and the user views show it, a page of logs,
//! the stat, new-api's dashboard rows ([`dashboard`]), the time series ([`series`]), and (in
//! [`envelope`]) new-api's envelope around them and around errors.

use logbus_projections::rows::LogRow;
use serde::Serialize;
use utoipa::ToSchema;

mod dashboard;
mod envelope;
mod export;
mod list_stream;
pub mod log_json;
mod series;

pub use dashboard::{QuotaDataItem, QuotaDataResponse, SignedInMonth};
pub use series::{Series, SeriesData, SeriesKey, SeriesPoint, SeriesResponse, Usage};

pub use envelope::{
    DeleteResponse, Envelope, EnvelopeData, ErrorResponse, ErrorResponses, Gate, HealthResponse,
    LogListResponse, LogPageResponse, Open, PublicToken, SignedIn, SignedInDelete, StatResponse,
    Static,
};
pub use export::{ADMIN_COLUMNS, ExportEncoder, ExportFormat, ExportTotals, columns};
pub use list_stream::ListEncoder;

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

/// The rows as `view` shows them, numbered from `first_id + 1`.
pub fn items(rows: Vec<LogRow>, first_id: u64, view: View) -> Vec<LogItem> {
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
    /// Effective page number (for a cursor page: the page its first row would be on with
    /// this page size).
    pub page: u64,
    /// Effective page size.
    pub page_size: u64,
    /// A logbus addition: pass it as `cursor` to read the next page (at any depth, beyond the
    /// offset window too); `null` on the last page. Opaque.
    pub next_cursor: Option<String>,
}

/// Usage statistics.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatData {
    /// Sum of quota over the filters and time range.
    pub quota: i64,
    /// Logs with `now - 60 <= created_at <= now` (a log stamped in the future does not count).
    pub rpm: u64,
    /// Prompt + completion tokens in the last 60 seconds.
    pub tpm: i64,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A row with every field set, its `other` holding admin-only keys.
    pub(crate) fn sample_row() -> LogRow {
        LogRow {
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
        }
    }

    #[test]
    fn user_view_hides_admin_details() {
        let row = sample_row();
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
