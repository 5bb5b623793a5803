//! The parameters of the time series (`/api/log/stat/series`, `/api/log/self/stat/series`):
//! the stat's filters plus the bucket size, the time zone of day buckets, up to two grouping
//! dimensions and the number of series to keep.

use std::borrow::Cow;

use chrono_tz::Tz;
use utoipa::openapi::RefOr;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::{LogFilter, Params, StatFilter};
use crate::error::BadInput;

/// Most dimensions `group_by` takes.
pub const MAX_GROUP_BY: usize = 2;
/// Largest `top`.
pub const MAX_TOP: i64 = 100;

/// The size of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Interval {
    Minute,
    Hour,
    /// A calendar day in the request's time zone (not always 86400 s: DST).
    Day,
}

impl Interval {
    pub const ALLOWED: &'static str = "minute, hour, day";

    pub fn name(self) -> &'static str {
        match self {
            Interval::Minute => "minute",
            Interval::Hour => "hour",
            Interval::Day => "day",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "minute" => Some(Interval::Minute),
            "hour" => Some(Interval::Hour),
            "day" => Some(Interval::Day),
            _ => None,
        }
    }
}

/// What a series can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dimension {
    Model,
    User,
    Token,
    Channel,
    Group,
}

impl Dimension {
    pub const ALLOWED: &'static str = "model, user, token, channel, group";

    pub fn name(self) -> &'static str {
        match self {
            Dimension::Model => "model",
            Dimension::User => "user",
            Dimension::Token => "token",
            Dimension::Channel => "channel",
            Dimension::Group => "group",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "model" => Some(Dimension::Model),
            "user" => Some(Dimension::User),
            "token" => Some(Dimension::Token),
            "channel" => Some(Dimension::Channel),
            "group" => Some(Dimension::Group),
            _ => None,
        }
    }
}

/// The `tz` values accepted: the IANA time zone names `chrono-tz` knows (its parser takes
/// exactly these, case-sensitively). Documented as an enum so that clients and the fuzz test
/// know the choices.
#[derive(Debug)]
pub struct TimeZone;

impl PartialSchema for TimeZone {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("An IANA time zone name, e.g. `Asia/Shanghai`."))
            .enum_values(Some(chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())))
            .into()
    }
}

impl ToSchema for TimeZone {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("TimeZone")
    }
}

/// The options of the series besides the filters (documented for the OpenAPI document; the
/// parsed form is [`SeriesQuery`]).
#[derive(Debug, Clone, PartialEq, Eq, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesOptions {
    /// Bucket size: `minute`, `hour` (default) or `day`. Minute and hour buckets are UTC
    /// minutes and hours; day buckets start at midnight in `tz`.
    #[param(value_type = Option<Interval>, inline)]
    pub interval: Option<String>,
    /// IANA time zone of day buckets, e.g. `Asia/Shanghai`; default `UTC`.
    #[param(value_type = Option<TimeZone>)]
    pub tz: Option<String>,
    /// Up to two of `model`, `user`, `token`, `channel`, `group`, comma-separated: one series
    /// per combination. Absent: one series over everything. (Spaces around the names, empty
    /// parts and repeats are tolerated too; the pattern gives the plain form.)
    #[param(pattern = "^(model|user|token|channel|group)(,(model|user|token|channel|group))?$")]
    pub group_by: Option<String>,
    /// Keep the N series with the largest quota (ties: more requests first), 1..=100; the rest
    /// are summed into one series marked `other`. Absent: every series.
    #[param(minimum = 1, maximum = 100)]
    pub top: Option<i64>,
}

/// A parsed series request. `filter` has the stat's semantics (absent type: consumption) and
/// a start; an absent end is left for the caller to set to now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesQuery {
    pub filter: LogFilter,
    pub interval: Interval,
    pub tz: Tz,
    /// Distinct, in request order.
    pub group_by: Vec<Dimension>,
    pub top: Option<u32>,
}

impl SeriesQuery {
    pub fn from_params(params: &Params, allow_username: bool) -> Result<Self, BadInput> {
        let StatFilter(filter) = StatFilter::from_params(params, allow_username)?;
        if filter.start.is_none() {
            return Err(BadInput::Required {
                name: "start_timestamp",
            });
        }
        let interval = match params.string("interval")? {
            None => Interval::Hour,
            Some(value) => Interval::parse(&value)
                .ok_or_else(|| BadInput::not_one_of("interval", &value, Interval::ALLOWED))?,
        };
        let tz = match params.string("tz")? {
            None => Tz::UTC,
            Some(value) => value
                .parse::<Tz>()
                .map_err(|_| BadInput::unknown_time_zone(&value))?,
        };
        let mut group_by = Vec::new();
        for part in params.string("group_by")?.unwrap_or_default().split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let dimension = Dimension::parse(part)
                .ok_or_else(|| BadInput::not_one_of("group_by", part, Dimension::ALLOWED))?;
            if !group_by.contains(&dimension) {
                group_by.push(dimension);
            }
        }
        if group_by.len() > MAX_GROUP_BY {
            return Err(BadInput::TooManyGroups { max: MAX_GROUP_BY });
        }
        let top = params.int_in("top", 1, MAX_TOP)?.map(|n| n as u32);
        Ok(SeriesQuery {
            filter,
            interval,
            tz,
            group_by,
            top,
        })
    }
}

/// The filters of the series as the OpenAPI document lists them: the stat's, with a required
/// start.
#[derive(Debug)]
pub struct SeriesFilter;

impl IntoParams for SeriesFilter {
    fn into_params(parameter_in_provider: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let mut parameters = StatFilter::into_params(parameter_in_provider);
        for parameter in &mut parameters {
            let description = match parameter.name.as_str() {
                "start_timestamp" => {
                    // 0 is "absent" for every timestamp filter, so the least start is 1.
                    parameter.required = utoipa::openapi::Required::True;
                    parameter.schema = Some(
                        ObjectBuilder::new()
                            .schema_type(Type::Integer)
                            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                            .minimum(Some(1))
                            .into(),
                    );
                    "Unix seconds, inclusive; required. A start inside a minute counts only \
                     the seconds from it."
                }
                "end_timestamp" => {
                    "Unix seconds, inclusive; 0 or absent: now. An end inside a minute counts \
                     only the seconds up to it."
                }
                _ => continue,
            };
            parameter.description = Some(description.to_owned());
        }
        parameters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> Result<SeriesQuery, BadInput> {
        SeriesQuery::from_params(&Params::parse(Some(q)).expect("parses"), true)
    }

    #[test]
    fn defaults_and_choices() {
        let q = query("start_timestamp=60").expect("parses");
        assert_eq!(q.interval, Interval::Hour);
        assert_eq!(q.tz, Tz::UTC);
        assert!(q.group_by.is_empty());
        assert_eq!(q.top, None);
        assert_eq!(q.filter.log_type, Some(2), "absent type counts consumption");
        let q = query(
            "start_timestamp=60&interval=day&tz=Asia/Kolkata&group_by=user,%20model,user&top=5",
        )
        .expect("parses");
        assert_eq!(q.interval, Interval::Day);
        assert_eq!(q.tz, Tz::Asia__Kolkata);
        assert_eq!(q.group_by, vec![Dimension::User, Dimension::Model]);
        assert_eq!(q.top, Some(5));
    }

    #[test]
    fn bad_values_are_refused() {
        assert_eq!(
            query("").unwrap_err(),
            BadInput::Required {
                name: "start_timestamp"
            }
        );
        assert!(matches!(
            query("start_timestamp=1&interval=week"),
            Err(BadInput::NotOneOf {
                name: "interval",
                ..
            })
        ));
        assert!(matches!(
            query("start_timestamp=1&tz=Mars/Olympus"),
            Err(BadInput::UnknownTimeZone(_))
        ));
        assert!(matches!(
            query("start_timestamp=1&group_by=ip"),
            Err(BadInput::NotOneOf {
                name: "group_by",
                ..
            })
        ));
        assert_eq!(
            query("start_timestamp=1&group_by=model,user,token").unwrap_err(),
            BadInput::TooManyGroups { max: 2 }
        );
        for top in ["0", "101", "x"] {
            assert!(
                query(&format!("start_timestamp=1&top={top}")).is_err(),
                "{top}"
            );
        }
    }
}
