//! Lenient, hand-rolled query-string parsing, so that every refusal is a JSON envelope
//! (axum's `Query` extractor answers bad numbers with a plain-text 400), plus the filters of
//! the log endpoints turned into SQL conditions whose values are always bound parameters.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use percent_encoding::percent_decode;
use serde::Serialize;

use crate::error::{ApiError, BadInput, PatternProblem};

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

/// Effective pagination: never "all rows".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u64,
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

/// A string filter: exact, or a LIKE pattern when the value holds `%`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Exact(String),
    /// A LIKE pattern whose `_` and `\` are escaped so that only `%` is a wildcard.
    Like(String),
}

impl Match {
    /// Pattern rules: at most two `%`, never `%%`, and at least two other characters.
    pub fn parse(name: &'static str, value: String) -> Result<Match, BadInput> {
        if !value.contains('%') {
            return Ok(Match::Exact(value));
        }
        let invalid = |problem| BadInput::InvalidPattern { name, problem };
        if value.contains("%%") {
            return Err(invalid(PatternProblem::DoublePercent));
        }
        if value.matches('%').count() > 2 {
            return Err(invalid(PatternProblem::TooManyPercent));
        }
        if value.chars().filter(|c| *c != '%').count() < 2 {
            return Err(invalid(PatternProblem::TooShort));
        }
        let mut pattern = String::with_capacity(value.len() + 4);
        for c in value.chars() {
            if c == '_' || c == '\\' {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        Ok(Match::Like(pattern))
    }
}

/// Filters of the list and stat endpoints. Timestamps are unix seconds, inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// `None`: every type.
    pub log_type: Option<i64>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub user_id: Option<i64>,
    pub token_id: Option<i64>,
    pub username: Option<Match>,
    pub token_name: Option<String>,
    pub model_name: Option<Match>,
    pub channel: Option<i64>,
    pub group: Option<String>,
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
            token_id: None,
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

/// A bound value. Serialized as the `param_*` of a ClickHouse query parameter.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Str(String),
    I64(i64),
    U64(u64),
}

impl Value {
    fn clickhouse_type(&self) -> &'static str {
        match self {
            Value::Str(_) => "String",
            Value::I64(_) => "Int64",
            Value::U64(_) => "UInt64",
        }
    }
}

/// SQL conditions joined with AND, with their values as server-side query parameters
/// (`{p0:Int64}`): no value is ever spliced into the SQL text.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    clauses: Vec<String>,
    params: Vec<(String, Value)>,
}

impl Conditions {
    /// Registers a value and returns its placeholder.
    pub fn bind(&mut self, value: Value) -> String {
        let name = format!("p{}", self.params.len());
        let placeholder = format!("{{{name}:{}}}", value.clickhouse_type());
        self.params.push((name, value));
        placeholder
    }

    pub fn push(&mut self, clause: impl Into<String>) {
        self.clauses.push(clause.into());
    }

    /// `expr <op> {value}`.
    pub fn compare(&mut self, expr: &str, op: &str, value: Value) {
        let placeholder = self.bind(value);
        self.push(format!("{expr} {op} {placeholder}"));
    }

    pub fn string_match(&mut self, column: &str, value: &Match) {
        match value {
            Match::Exact(v) => self.compare(column, "=", Value::Str(v.clone())),
            Match::Like(v) => self.compare(column, "LIKE", Value::Str(v.clone())),
        }
    }

    /// `WHERE ...` (or `WHERE true`).
    pub fn where_clause(&self) -> String {
        if self.clauses.is_empty() {
            "WHERE true".to_owned()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// `WHERE ...` of the clauses pushed so far, which are then cleared while their values stay
    /// bound: several subqueries of one statement can share one set of parameters.
    pub fn take_where(&mut self) -> String {
        let clause = self.where_clause();
        self.clauses.clear();
        clause
    }

    pub fn apply(&self, mut query: clickhouse::query::Query) -> clickhouse::query::Query {
        for (name, value) in &self.params {
            query = query.param(name, value);
        }
        query
    }

    /// The non-time filters, on columns that `logs` and `logs_minute` share
    /// (`request_id` exists only in `logs`: callers route such filters to the raw table).
    pub fn dimensions(&mut self, filter: &LogFilter) {
        if let Some(t) = filter.log_type {
            self.compare("type", "=", Value::I64(t));
        }
        if let Some(user_id) = filter.user_id {
            self.compare("user_id", "=", Value::I64(user_id));
        }
        if let Some(token_id) = filter.token_id {
            self.compare("token_id", "=", Value::I64(token_id));
        }
        if let Some(username) = &filter.username {
            self.string_match("username", username);
        }
        if let Some(token_name) = &filter.token_name {
            self.compare("token_name", "=", Value::Str(token_name.clone()));
        }
        if let Some(model_name) = &filter.model_name {
            self.string_match("model_name", model_name);
        }
        if let Some(channel) = filter.channel {
            self.compare("channel_id", "=", Value::I64(channel));
        }
        if let Some(group) = &filter.group {
            self.compare("`group`", "=", Value::Str(group.clone()));
        }
        if let Some(request_id) = &filter.request_id {
            self.compare("request_id", "=", Value::Str(request_id.clone()));
        }
    }

    /// `created_at` within `[start, end]` (seconds, inclusive), each bound optional.
    /// Bounds beyond the `DateTime` range are handled here rather than sent as overflowing
    /// values: a start after 2106 matches nothing, an end after it is unbounded.
    pub fn time_range(&mut self, column: &str, start: Option<i64>, end: Option<i64>) {
        if let Some(start) = start {
            if start > i64::from(u32::MAX) {
                self.push("false");
            } else {
                self.compare(column, ">=", Value::I64(start));
            }
        }
        if let Some(end) = end
            && end <= i64::from(u32::MAX)
        {
            self.compare(column, "<=", Value::I64(end));
        }
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
    fn patterns() {
        assert_eq!(
            Match::parse("m", "gpt-4".into()),
            Ok(Match::Exact("gpt-4".into()))
        );
        assert_eq!(
            Match::parse("m", "gpt%".into()),
            Ok(Match::Like("gpt%".into()))
        );
        assert_eq!(
            Match::parse("m", "%my_model%".into()),
            Ok(Match::Like("%my\\_model%".into()))
        );
        assert!(Match::parse("m", "%a%b%".into()).is_err());
        assert!(Match::parse("m", "ab%%".into()).is_err());
        assert!(Match::parse("m", "a%".into()).is_err());
        assert!(Match::parse("m", "%".into()).is_err());
    }

    #[test]
    fn values_become_parameters() {
        let filter = LogFilter {
            model_name: Some(Match::Exact("x' OR 1=1 --".into())),
            ..Default::default()
        };
        let mut c = Conditions::default();
        c.dimensions(&filter);
        assert_eq!(c.where_clause(), "WHERE model_name = {p0:String}");
        assert!(!c.where_clause().contains("OR 1=1"));
    }
}
