//! The parameters of new-api's dashboard endpoints (`/api/data/*`): a range of hour-bucket
//! starts and, on the admin endpoint, a username.

use utoipa::IntoParams;

use super::Params;
use crate::error::BadInput;

/// The longest range `/api/data/self` accepts, in seconds (new-api's 1 month: 30 days).
pub const SELF_MAX_SPAN_SECS: i64 = 2_592_000;

/// Which hour buckets to return: those whose start (`created_at`, a whole UTC hour) lies in
/// `[start_timestamp, end_timestamp]`, as new-api compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DataRange {
    /// Unix seconds, inclusive, compared with the start of each hour bucket; absent: 0.
    #[param(rename = "start_timestamp", value_type = Option<i64>)]
    pub start: i64,
    /// Unix seconds, inclusive, compared with the start of each hour bucket; absent: 0 (so
    /// nothing matches, as in new-api).
    #[param(rename = "end_timestamp", value_type = Option<i64>)]
    pub end: i64,
}

impl DataRange {
    /// Absent values are 0, as new-api's `ParseInt` error leaves them; unlike new-api, a value
    /// that is not an integer is refused instead of silently becoming 0.
    pub fn from_params(params: &Params) -> Result<Self, BadInput> {
        Ok(DataRange {
            start: params.int("start_timestamp")?.unwrap_or(0),
            end: params.int("end_timestamp")?.unwrap_or(0),
        })
    }

    /// `/api/data/self`'s limit: new-api refuses a span over 30 days.
    pub fn within_a_month(self) -> Result<Self, BadInput> {
        if self.end.saturating_sub(self.start) > SELF_MAX_SPAN_SECS {
            Err(BadInput::RangeOverMonth)
        } else {
            Ok(self)
        }
    }
}

/// The username of `/api/data/`.
#[derive(Debug, Clone, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DataUser {
    /// Exact username: that user's rows per model and hour; absent or empty: one row per model
    /// and hour over all users.
    pub username: Option<String>,
}

impl DataUser {
    pub fn from_params(params: &Params) -> Result<Self, BadInput> {
        Ok(DataUser {
            username: params.string("username")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(q: &str) -> Result<DataRange, BadInput> {
        DataRange::from_params(&Params::parse(Some(q)).expect("parses"))
    }

    #[test]
    fn absent_bounds_are_zero_and_garbage_is_refused() {
        assert_eq!(range(""), Ok(DataRange { start: 0, end: 0 }));
        assert_eq!(
            range("start_timestamp=-5&end_timestamp=7200"),
            Ok(DataRange {
                start: -5,
                end: 7200
            })
        );
        assert!(matches!(
            range("start_timestamp=1767225600.5"),
            Err(BadInput::NotAnInteger { .. })
        ));
    }

    #[test]
    fn self_span_is_at_most_thirty_days() {
        let at = |start, end| DataRange { start, end }.within_a_month();
        assert!(at(0, SELF_MAX_SPAN_SECS).is_ok());
        assert_eq!(at(0, SELF_MAX_SPAN_SECS + 1), Err(BadInput::RangeOverMonth));
        assert_eq!(at(i64::MIN, i64::MAX), Err(BadInput::RangeOverMonth));
        // An inverted range is not too long: it matches nothing.
        assert!(at(100, 0).is_ok());
    }
}
