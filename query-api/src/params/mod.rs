//! Lenient, hand-rolled query-string parsing into the typed parameters of each endpoint, so
//! that every refusal is a JSON envelope (axum's `Query` extractor answers bad numbers with a
//! plain-text 400).
//!
//! The types the parser produces ([`Page`], [`LogFilter`], [`StatFilter`], [`Keyword`],
//! [`TokenKey`], [`DeleteBefore`], [`DataRange`], [`DataUser`], [`SeriesQuery`], [`ExportOptions`], [`Pagination`] with [`CursorParam`], the tail's [`TailCursor`] and [`LastEventId`]) are also what the OpenAPI document describes (they derive
//! or implement `IntoParams`), so the document lists exactly the parameters that are read.
//! Turning filters into SQL is [`crate::sql`]'s job.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use logbus_projections::events::LOG_TYPE_CONSUME;
use percent_encoding::percent_decode;
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterIn};

use crate::error::{ApiError, BadInput};

mod cursor;
mod dashboard;
mod delete;
mod export;
mod pattern;
mod series;
mod tail_cursor;

pub use cursor::{Cursor, CursorParam, MAX_WINDOW, Pagination};
pub use dashboard::{DataRange, DataUser, SELF_MAX_SPAN_SECS};
pub use delete::{DeleteBefore, DeleteCheck};
pub use export::ExportOptions;
pub use pattern::Match;
pub use series::{
    Dimension, Interval, MAX_GROUP_BY, MAX_TOP, SeriesFilter, SeriesOptions, SeriesQuery, TimeZone,
};
pub use tail_cursor::{LastEventId, TailCursor};

/// Longest accepted string parameter, in characters.
pub const MAX_STRING_PARAM: usize = 1024;
pub const DEFAULT_PAGE_SIZE: u64 = 20;
pub const MAX_PAGE_SIZE: u64 = 100;

/// The decoded query string. Unknown parameters are ignored (like new-api); the first
/// occurrence of a repeated parameter wins (like Go's `c.Query`).
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

fn decode(part: &str) -> Result<String, BadInput> {
    let bytes: Vec<u8> = part
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    let decoded: Vec<u8> = percent_decode(&bytes).collect();
    String::from_utf8(decoded).map_err(|_| BadInput::InvalidUtf8)
}

impl Params {
    pub fn parse(query: Option<&str>) -> Result<Self, BadInput> {
        let mut pairs = Vec::new();
        for part in query.unwrap_or("").split('&') {
            if part.is_empty() {
                continue;
            }
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode(key)?, decode(value)?));
        }
        Ok(Self { pairs })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A string parameter; empty means absent.
    pub fn string(&self, name: &'static str) -> Result<Option<String>, BadInput> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(value) if value.chars().count() > MAX_STRING_PARAM => Err(BadInput::TooLong {
                name,
                max: MAX_STRING_PARAM,
            }),
            Some(value) => Ok(Some(value.to_owned())),
        }
    }

    /// An integer parameter; empty means absent, anything unparsable is refused.
    pub fn int(&self, name: &'static str) -> Result<Option<i64>, BadInput> {
        match self.get(name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(value) => match value.parse::<i64>() {
                Ok(number) => Ok(Some(number)),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow
                    ) =>
                {
                    Err(BadInput::out_of_range(name, value, i64::MIN, i64::MAX))
                }
                Err(_) => Err(BadInput::not_an_integer(name, value)),
            },
        }
    }

    /// An integer that must lie in `min..=max`.
    pub fn int_in(&self, name: &'static str, min: i64, max: i64) -> Result<Option<i64>, BadInput> {
        match self.int(name)? {
            Some(n) if n < min || n > max => {
                Err(BadInput::out_of_range(name, &n.to_string(), min, max))
            }
            other => Ok(other),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Params::parse(parts.uri.query())?)
    }
}

/// Effective pagination: never "all rows". Unknown parameters are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Page number, 1-based; absent, unparsable or < 1 means 1. `p * page_size` may not
    /// exceed 10000 (400 beyond: use `cursor`).
    #[param(rename = "p", value_type = Option<i64>)]
    pub page: u64,
    /// Page size, default 20; absent, unparsable or < 1 means 20; above 100 means 100.
    #[param(value_type = Option<i64>)]
    pub page_size: u64,
}

impl Page {
    /// `p` defaults to 1 and `page_size` to 20 when absent, unparsable or below 1;
    /// `page_size` above 100 is clamped to 100.
    pub fn from_params(params: &Params) -> Self {
        let number = |name| {
            params
                .get(name)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|n| *n >= 1)
                .map(|n| n as u64)
        };
        Page {
            page: number("p").unwrap_or(1),
            page_size: number("page_size")
                .map(|n| n.min(MAX_PAGE_SIZE))
                .unwrap_or(DEFAULT_PAGE_SIZE),
        }
    }

    pub fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(self.page_size)
    }
}

/// Filters of the list and stat endpoints. Timestamps are unix seconds, inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogFilter {
    /// Log type (1 top-up, 2 consume, 3 manage, 4 system, 5 error, 6 refund, 7 login); 0 or absent: all.
    #[param(rename = "type", minimum = 0, maximum = 255)]
    pub log_type: Option<i64>,
    /// Unix seconds, inclusive; 0 or absent: unbounded.
    #[param(rename = "start_timestamp", minimum = 0)]
    pub start: Option<i64>,
    /// Unix seconds, inclusive; 0 or absent: unbounded.
    #[param(rename = "end_timestamp", minimum = 0)]
    pub end: Option<i64>,
    /// Never read from the query string: the user endpoints set it to the caller.
    #[param(ignore)]
    pub user_id: Option<i64>,
    /// Exact username, or a LIKE pattern with `%` (at most 2, no `%%`, at least 2 other characters). Admin endpoints only.
    #[param(value_type = Option<String>)]
    pub username: Option<Match>,
    /// Exact token name.
    pub token_name: Option<String>,
    /// Exact model name, or a LIKE pattern with `%` (rules as for username).
    #[param(value_type = Option<String>)]
    pub model_name: Option<Match>,
    /// Channel id; 0 or absent: all.
    pub channel: Option<i64>,
    /// Exact group.
    pub group: Option<String>,
    /// Exact request id.
    pub request_id: Option<String>,
}

impl LogFilter {
    /// Reads the filters; `username` only when `allow_username` (the admin endpoints).
    pub fn from_params(params: &Params, allow_username: bool) -> Result<Self, BadInput> {
        let nonzero = |n: Option<i64>| n.filter(|n| *n != 0);
        let timestamp = |name| params.int_in(name, 0, i64::MAX).map(nonzero);
        Ok(LogFilter {
            log_type: nonzero(params.int_in("type", 0, 255)?),
            start: timestamp("start_timestamp")?,
            end: timestamp("end_timestamp")?,
            user_id: None,
            username: if allow_username {
                params
                    .string("username")?
                    .map(|v| Match::parse("username", v))
                    .transpose()?
            } else {
                None
            },
            token_name: params.string("token_name")?,
            model_name: params
                .string("model_name")?
                .map(|v| Match::parse("model_name", v))
                .transpose()?,
            channel: nonzero(params.int("channel")?),
            group: params.string("group")?,
            request_id: params.string("request_id")?,
        })
    }
}

/// The filters of the stat endpoints: those of [`LogFilter`], except that an absent type
/// counts consumption logs and the time range applies to `quota` only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatFilter(pub LogFilter);

impl StatFilter {
    pub fn from_params(params: &Params, allow_username: bool) -> Result<Self, BadInput> {
        let mut filter = LogFilter::from_params(params, allow_username)?;
        filter.log_type = filter.log_type.or(Some(i64::from(LOG_TYPE_CONSUME)));
        Ok(StatFilter(filter))
    }
}

impl IntoParams for StatFilter {
    fn into_params(parameter_in_provider: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let mut parameters = LogFilter::into_params(parameter_in_provider);
        for parameter in &mut parameters {
            let description = match parameter.name.as_str() {
                "type" => "Log type to count; 0 or absent: consumption logs (2).",
                "start_timestamp" | "end_timestamp" => {
                    "Unix seconds, inclusive; 0 or absent: unbounded. Applies to quota only."
                }
                _ => continue,
            };
            parameter.description = Some(description.to_owned());
        }
        parameters
    }
}

/// The keyword of the search endpoints.
#[derive(Debug, Clone, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Keyword {
    /// A number matches the log type; any keyword matches content as a case-insensitive,
    /// literal substring.
    #[param(value_type = Option<String>)]
    pub keyword: String,
}

impl Keyword {
    /// Absent means empty (every log matches).
    pub fn from_params(params: &Params) -> Result<Self, BadInput> {
        Ok(Keyword {
            keyword: params.string("keyword")?.unwrap_or_default(),
        })
    }
}

/// The key of the public token endpoint, when given in the query string.
#[derive(Debug, Clone, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenKey {
    /// Token key, with or without `sk-`. May instead be sent as `Authorization: Bearer sk-...`.
    pub key: Option<String>,
}

impl TokenKey {
    pub fn from_params(params: &Params) -> Result<Self, BadInput> {
        Ok(TokenKey {
            key: params.string("key")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &str) -> Params {
        Params::parse(Some(q)).expect("parses")
    }

    #[test]
    fn pagination_falls_back_and_clamps() {
        let page = |q: &str| Page::from_params(&params(q));
        assert_eq!(
            page(""),
            Page {
                page: 1,
                page_size: 20
            }
        );
        assert_eq!(page("p=0&page_size=0").page, 1);
        assert_eq!(page("p=0&page_size=0").page_size, 20);
        assert_eq!(page("p=-3&page_size=-1").page_size, 20);
        assert_eq!(page("page_size=1000").page_size, 100);
        assert_eq!(page("page_size=abc").page_size, 20);
        assert_eq!(page("p=99999999999999999999999").page, 1);
        let huge = page("p=9223372036854775807&page_size=100");
        assert_eq!(huge.offset(), u64::MAX);
    }

    #[test]
    fn numbers_are_checked() {
        assert_eq!(params("type=2").int("type"), Ok(Some(2)));
        assert!(matches!(
            params("type=abc").int("type"),
            Err(BadInput::NotAnInteger { .. })
        ));
        assert!(matches!(
            params("channel=99999999999999999999").int("channel"),
            Err(BadInput::OutOfRange { .. })
        ));
        assert!(
            LogFilter::from_params(&params("start_timestamp=-1"), true).is_err(),
            "negative timestamps are refused"
        );
    }

    #[test]
    fn decoding_refuses_invalid_utf8_and_handles_plus() {
        assert_eq!(
            Params::parse(Some("a=%ff")).unwrap_err(),
            BadInput::InvalidUtf8
        );
        assert_eq!(params("k=a+b%20c").get("k"), Some("a b c"));
        assert_eq!(params("k=%E4%B8%AD").get("k"), Some("中"));
        assert_eq!(params("k=1&k=2").get("k"), Some("1"));
        assert_eq!(params("flag").get("flag"), Some(""));
    }

    #[test]
    fn stat_parameters() {
        let stat = StatFilter::from_params(&params(""), false).expect("parses");
        assert_eq!(stat.0.log_type, Some(2));
    }
}
