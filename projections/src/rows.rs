//! Row types of the ClickHouse tables, in column order. Ingest writes them with RowBinary and
//! query-api reads them back, so a schema change breaks the build instead of production.

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One row of `logs`. `ingested_at` is omitted: the server fills it on insert.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct LogRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    /// Unix seconds (`DateTime('UTC')`).
    pub created_at: u32,
    #[serde(rename = "type")]
    pub log_type: u8,
    pub user_id: i64,
    pub username: String,
    pub token_id: i64,
    pub token_name: String,
    pub model_name: String,
    pub quota: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub use_time: i32,
    pub is_stream: bool,
    pub channel_id: i64,
    pub channel_name: String,
    pub group: String,
    pub ip: String,
    pub request_id: String,
    pub upstream_request_id: String,
    pub content: String,
    /// A JSON object serialized to a string ("" when the event had none).
    pub other: String,
    pub ingest_batch: u64,
}

/// The column list of [`LogRow`], for hand-written SELECTs that must match it.
pub const LOG_ROW_COLUMNS: &str = "event_id, created_at, type, user_id, username, token_id, \
    token_name, model_name, quota, prompt_tokens, completion_tokens, use_time, is_stream, \
    channel_id, channel_name, `group`, ip, request_id, upstream_request_id, content, other, \
    ingest_batch";

/// One row of `users`.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub role: i32,
    pub status: i32,
    pub group: String,
    pub access_token_sha256: String,
    pub version: u64,
}

/// One row of `tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct TokenRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub key_sha256: String,
    pub status: i32,
    pub version: u64,
}

/// One aggregated row of `logs_minute` (already summed over a key).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct MinuteRollupRow {
    pub minute: u32,
    #[serde(rename = "type")]
    pub log_type: u8,
    pub user_id: i64,
    pub username: String,
    pub token_id: i64,
    pub token_name: String,
    pub model_name: String,
    pub channel_id: i64,
    pub group: String,
    pub requests: u64,
    pub quota: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

/// Identity values shared by the API and the identity tables.
pub mod identity_codes {
    pub const ROLE_USER: i32 = 1;
    pub const ROLE_ADMIN: i32 = 10;
    pub const ROLE_ROOT: i32 = 100;
    pub const STATUS_ENABLED: i32 = 1;
    pub const STATUS_DISABLED: i32 = 2;
}
