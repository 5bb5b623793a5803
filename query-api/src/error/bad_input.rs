//! [`BadInput`]: the input the API refuses with 400, and what it tells the caller (which
//! parameter, what was wrong, what would be accepted), in both languages.

use super::Lang;

/// Why a pattern filter (`username`, `model_name` containing `%`) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternProblem {
    TooManyPercent,
    DoublePercent,
    TooShort,
}

/// Input the API refuses with 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadInput {
    #[error("parameter {name} must be an integer, got {value:?}")]
    NotAnInteger { name: &'static str, value: String },
    #[error("parameter {name} must be between {min} and {max}, got {value}")]
    OutOfRange {
        name: &'static str,
        value: String,
        min: i64,
        max: i64,
    },
    #[error("the query string is not valid UTF-8 after percent-decoding")]
    InvalidUtf8,
    #[error("parameter {name} is longer than {max} characters")]
    TooLong { name: &'static str, max: usize },
    #[error("parameter {name} is not a valid pattern: {problem:?}")]
    InvalidPattern {
        name: &'static str,
        problem: PatternProblem,
    },
    #[error("target timestamp is required")]
    TargetTimestampRequired,
    #[error("parameter {name} is required")]
    Required { name: &'static str },
    #[error("the time range of /api/data/self exceeds 30 days")]
    RangeOverMonth,
    #[error("parameter {name} must be one of {allowed}, got {value:?}")]
    NotOneOf {
        name: &'static str,
        value: String,
        allowed: &'static str,
    },
    #[error("unknown time zone {0:?}")]
    UnknownTimeZone(String),
    #[error("group_by takes at most {max} distinct dimensions")]
    TooManyGroups { max: usize },
    #[error("the series would have {buckets} buckets, more than {max}")]
    TooManyBuckets { buckets: u64, max: u64 },
    #[error("the series would have more than {max} points")]
    TooManyPoints { max: u64 },
    #[error("page beyond the window of {max} rows: use cursor pagination")]
    BeyondWindow { max: u64 },
    #[error("parameter cursor is not a cursor this API issued")]
    InvalidCursor,
    #[error("parameter {name} must be true or false, got {value:?}")]
    NotABoolean { name: &'static str, value: String },
    #[error("target_timestamp {target} is in the future")]
    TargetInTheFuture { target: i64 },
    #[error("target_timestamp {target} is newer than {newest_allowed} and confirm is not set")]
    TargetTooRecent { target: i64, newest_allowed: i64 },
    #[error("Last-Event-ID is not an event id of this API's tail")]
    InvalidLastEventId,
    #[error("Last-Event-ID is more than {horizon_secs} s from the tail's position")]
    ResumeBeyondHorizon { horizon_secs: u64 },
}

fn shorten(value: &str) -> String {
    const MAX: usize = 64;
    if value.chars().count() <= MAX {
        value.to_owned()
    } else {
        let mut short: String = value.chars().take(MAX).collect();
        short.push('…');
        short
    }
}

impl BadInput {
    pub fn not_an_integer(name: &'static str, value: &str) -> Self {
        BadInput::NotAnInteger {
            name,
            value: shorten(value),
        }
    }

    pub fn not_a_boolean(name: &'static str, value: &str) -> Self {
        BadInput::NotABoolean {
            name,
            value: shorten(value),
        }
    }

    pub fn out_of_range(name: &'static str, value: &str, min: i64, max: i64) -> Self {
        BadInput::OutOfRange {
            name,
            value: shorten(value),
            min,
            max,
        }
    }

    pub fn not_one_of(name: &'static str, value: &str, allowed: &'static str) -> Self {
        BadInput::NotOneOf {
            name,
            value: shorten(value),
            allowed,
        }
    }

    pub fn unknown_time_zone(value: &str) -> Self {
        BadInput::UnknownTimeZone(shorten(value))
    }

    pub(super) fn message(&self, lang: Lang) -> String {
        match self {
            BadInput::BeyondWindow { max } => lang.pick(
                format!(
                    "页码超出分页窗口：p × page_size 不能超过 {max}；\
                     继续读取请使用 cursor 参数（上一页返回的 next_cursor）"
                ),
                format!(
                    "page beyond the pagination window: p × page_size may not exceed {max}; \
                     to read further, pass the previous page's next_cursor as cursor"
                ),
            ),
            BadInput::InvalidLastEventId => lang.pick(
                "请求头 Last-Event-ID 无效：请使用实时日志事件的 id，或不带它重新连接",
                "the Last-Event-ID header is invalid: send the id of a tail event, or reconnect without it",
            ),
            BadInput::ResumeBeyondHorizon { horizon_secs } => lang.pick(
                format!("Last-Event-ID 超出可续传范围（{horizon_secs} 秒）：请不带它重新连接，缺失的日志可在日志列表中查看"),
                format!("Last-Event-ID is beyond the resume horizon ({horizon_secs} s): reconnect without it and read the missed logs from the log list"),
            ),
            BadInput::InvalidCursor => lang.pick(
                "参数 cursor 无效：请使用上一页返回的 next_cursor",
                "parameter cursor is invalid: pass the next_cursor of the previous page",
            ),
            BadInput::NotAnInteger { name, value } => lang.pick(
                format!("参数 {name} 必须是整数，收到 {value:?}"),
                format!("parameter {name} must be an integer, got {value:?}"),
            ),
            BadInput::OutOfRange {
                name,
                value,
                min,
                max,
            } => lang.pick(
                format!("参数 {name} 必须在 {min} 到 {max} 之间，收到 {value}"),
                format!("parameter {name} must be between {min} and {max}, got {value}"),
            ),
            BadInput::InvalidUtf8 => lang.pick(
                "请求参数不是有效的 UTF-8 编码",
                "the query string is not valid UTF-8 after percent-decoding",
            ),
            BadInput::TooLong { name, max } => lang.pick(
                format!("参数 {name} 过长，最多 {max} 个字符"),
                format!("parameter {name} is longer than {max} characters"),
            ),
            BadInput::InvalidPattern { name, problem } => {
                let (zh, en) = match problem {
                    PatternProblem::TooManyPercent => {
                        ("最多只能包含 2 个 %", "at most 2 '%' are allowed")
                    }
                    PatternProblem::DoublePercent => ("不能包含连续的 %%", "'%%' is not allowed"),
                    PatternProblem::TooShort => (
                        "除 % 外至少需要 2 个字符",
                        "at least 2 characters besides '%' are required",
                    ),
                };
                lang.pick(
                    format!("参数 {name} 的模糊匹配模式无效：{zh}"),
                    format!("invalid {name} pattern: {en}"),
                )
            }
            // new-api's exact message, in both languages.
            BadInput::TargetTimestampRequired => "target timestamp is required".to_owned(),
            BadInput::Required { name } => lang.pick(
                format!("缺少参数 {name}"),
                format!("parameter {name} is required"),
            ),
            // new-api's exact message (GetUserQuotaDates).
            BadInput::RangeOverMonth => lang.pick(
                "时间跨度不能超过 1 个月",
                "the time range must not exceed 1 month",
            ),
            BadInput::NotOneOf {
                name,
                value,
                allowed,
            } => lang.pick(
                format!("参数 {name} 必须是 {allowed} 之一，收到 {value:?}"),
                format!("parameter {name} must be one of {allowed}, got {value:?}"),
            ),
            BadInput::UnknownTimeZone(tz) => lang.pick(
                format!("参数 tz 不是已知的 IANA 时区：{tz:?}"),
                format!("parameter tz is not a known IANA time zone: {tz:?}"),
            ),
            BadInput::TooManyGroups { max } => lang.pick(
                format!("参数 group_by 最多包含 {max} 个不同的维度"),
                format!("parameter group_by takes at most {max} distinct dimensions"),
            ),
            BadInput::TooManyBuckets { buckets, max } => lang.pick(
                format!("时间序列将有 {buckets} 个时间桶，超过上限 {max}：请缩短时间范围或使用更大的 interval"),
                format!("the series would have {buckets} buckets, more than {max}: shorten the range or use a coarser interval"),
            ),
            BadInput::TooManyPoints { max } => lang.pick(
                format!("时间序列超过 {max} 个数据点：请缩短时间范围、使用更大的 interval 或 top"),
                format!("the series would have more than {max} points: shorten the range, use a coarser interval or top"),
            ),
            BadInput::NotABoolean { name, value } => lang.pick(
                format!("参数 {name} 必须是 true 或 false，收到 {value:?}"),
                format!("parameter {name} must be true or false, got {value:?}"),
            ),
            BadInput::TargetInTheFuture { target } => lang.pick(
                format!("target_timestamp {target} 晚于当前时间，拒绝删除；要删除全部日志，请使用当前时间并加上 confirm=true"),
                format!("target_timestamp {target} is in the future and is refused; to delete every log, cut at the current time with confirm=true"),
            ),
            BadInput::TargetTooRecent { target, newest_allowed } => lang.pick(
                format!("target_timestamp {target} 晚于 {newest_allowed}（当前时间减去保留下限），会删除近期日志；确认请加上 confirm=true，或用 dry_run=true 查看将删除的条数"),
                format!("target_timestamp {target} is newer than {newest_allowed} (now minus the minimum retention age) and would delete recent logs; add confirm=true to go ahead, or dry_run=true to count them"),
            ),
        }
    }
}
