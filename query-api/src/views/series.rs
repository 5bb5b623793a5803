//! The time series (`/api/log/stat/series`): series of points, each series named by the
//! values of its grouping dimensions.

use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

use super::envelope::{EnvelopeData, named, reference};

/// The sums of one bucket (or of a whole series).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Usage {
    /// Logs counted.
    pub requests: u64,
    pub quota: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.requests += other.requests;
        self.quota += other.quota;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
    }
}

/// One bucket of a series; buckets without logs are absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// Start of the bucket, unix seconds (a UTC minute or hour, or local midnight in `tz`).
    pub t: i64,
    #[serde(flatten)]
    pub usage: Usage,
}

/// What a series is: the values of the request's `group_by` dimensions (only those keys are
/// present; none without `group_by` or on the `other` series).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
pub struct SeriesKey {
    /// `group_by=model`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_name: Option<String>,
    /// `group_by=user` (grouped by id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    /// With `user_id`: the user's name in the latest bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `group_by=token` (grouped by id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<i64>,
    /// With `token_id`: the token's name in the latest bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_name: Option<String>,
    /// `group_by=channel`: the channel id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<i64>,
    /// `group_by=group`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// One series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Series {
    pub key: SeriesKey,
    /// True on the one series that sums everything outside the `top` N (its key is empty).
    pub other: bool,
    /// Sums over the whole range.
    pub total: Usage,
    /// Ascending by `t`.
    pub points: Vec<SeriesPoint>,
}

/// The answer of the series endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SeriesData {
    /// `minute`, `hour` or `day`.
    pub interval: &'static str,
    /// The time zone of day buckets.
    pub tz: String,
    /// The grouping dimensions, in request order.
    pub group_by: Vec<&'static str>,
    /// The effective range, unix seconds inclusive (the end is now when not given).
    pub start_timestamp: i64,
    pub end_timestamp: i64,
    /// Largest quota first (ties: more requests, then key); `other` last.
    pub series: Vec<Series>,
}

/// The envelope of the series.
pub type SeriesResponse = super::Envelope<SeriesData>;

impl EnvelopeData for SeriesData {
    const ENVELOPE: &'static str = "SeriesResponse";
    fn data_schema() -> RefOr<Schema> {
        reference::<SeriesData>()
    }
    fn named_schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        named::<SeriesData>(schemas);
    }
}
