//! Row types of the ClickHouse tables, in column order. Ingest writes them with RowBinary and
//! query-api reads them back, so a schema change breaks the build instead of production.
//!
//! A SELECT that reads a row type names its columns with the clickhouse crate's `?fields`
//! placeholder, which expands to the type's own column list: there is no hand-kept copy of it.

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

/// One row of `ingest_batches`: a batch the worker was about to insert, recorded before the
/// insert and read back on partition assignment, so that a replay cuts its batches at exactly
/// these boundaries (docs/ingest.md). `recorded_at` is omitted: the server fills it.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct Intent {
    pub consumer_group: String,
    pub topic: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub batch_id: u64,
    pub rows: u32,
}

/// Identity values shared by the API and the identity tables.
pub mod identity_codes {
    pub const ROLE_USER: i32 = 1;
    pub const ROLE_ADMIN: i32 = 10;
    pub const ROLE_ROOT: i32 = 100;
    pub const STATUS_ENABLED: i32 = 1;
    pub const STATUS_DISABLED: i32 = 2;
}
