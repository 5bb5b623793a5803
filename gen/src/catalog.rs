//! The vocabulary of the generated gateway: groups, models, token names, error messages and
//! how users, tokens and models are named, plus the [`Shape`] of a data set. Both the demo
//! generator (`logbus-gen`) and the benchmark draw from these lists, so they describe the
//! same gateway.

pub const GROUPS: [&str; 4] = ["default", "vip", "svip", "enterprise"];
pub const MODEL_BASES: [&str; 20] = [
    "gpt-4o-mini",
    "gpt-4o",
    "claude-3-5-sonnet-20241022",
    "deepseek-chat",
    "gpt-4.1",
    "gemini-2.0-flash",
    "qwen-max",
    "claude-3-7-sonnet-20250219",
    "deepseek-reasoner",
    "o3-mini",
    "gpt-4.1-mini",
    "gemini-2.5-pro",
    "claude-sonnet-4-20250514",
    "glm-4-plus",
    "moonshot-v1-32k",
    "text-embedding-3-small",
    "o1",
    "doubao-pro-32k",
    "llama-3.3-70b-instruct",
    "mistral-large-latest",
];
pub const TOKEN_NAMES: [&str; 8] = [
    "default", "ci", "prod", "dev", "test", "app", "bot", "backup",
];
/// Error messages of type-5 rows; the search keyword's default is one of them.
pub const ERRORS: [&str; 8] = [
    "upstream_error: status code 429, rate limit reached for requests",
    "upstream_error: status code 500, internal server error",
    "insufficient_quota: user quota is not enough",
    "request timeout after 60s, channel retry exhausted",
    "invalid_request_error: context length exceeded",
    "upstream_error: status code 503, model overloaded",
    "bad_response_status_code: 400 invalid image url",
    "channel_disabled: channel auto-disabled after consecutive failures",
];
/// Default search keyword: starts the content of about 0.4% of rows (one error kind).
pub const DEFAULT_KEYWORD: &str = "insufficient_quota";
/// Rare search keyword: starts the content of about 1 row in 100,000.
pub const RARE_KEYWORD: &str = "channel_disabled";
/// The size of a generated gateway and its data set.
#[derive(Debug, Clone)]
pub struct Shape {
    pub rows: u64,
    pub span_days: u32,
    pub users: u32,
    pub tokens: u32,
    pub models: u32,
    pub channels: u32,
    pub groups: u32,
    pub seed: u64,
    /// Unix seconds of the end of the span (exclusive).
    pub end: u32,
}

impl Shape {
    /// A gateway of `users` users (two tokens each, every model and channel of the lists)
    /// with no data set: what `logbus-gen` streams from, one event at a time.
    pub fn live(seed: u64, users: u32) -> Self {
        let users = users.max(1);
        Self {
            rows: 0,
            span_days: 0,
            users,
            tokens: users * 2,
            models: MODEL_BASES.len() as u32,
            channels: 12,
            groups: GROUPS.len() as u32,
            seed,
            end: 0,
        }
    }
}

pub fn model_name(i: u32) -> String {
    let base = MODEL_BASES[(i as usize) % MODEL_BASES.len()];
    if (i as usize) < MODEL_BASES.len() {
        base.to_string()
    } else {
        format!("{base}-{}", i as usize / MODEL_BASES.len())
    }
}

pub fn token_name(id: u32) -> String {
    format!("{}-{id}", TOKEN_NAMES[(id as usize) % TOKEN_NAMES.len()])
}

pub fn username(id: u32) -> String {
    format!("user{id}")
}

pub fn user_group(shape: &Shape, id: u32) -> &'static str {
    // 70% default, the rest spread over the other groups.
    let g = shape.groups.clamp(1, 4) as u64;
    let h = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
    if g == 1 || h % 10 < 7 {
        GROUPS[0]
    } else {
        GROUPS[1 + (h % (g - 1)) as usize]
    }
}

/// Tokens of user u: u, u + users, u + 2*users, ... up to `tokens`.
pub fn token_owner(shape: &Shape, token_id: u32) -> u32 {
    (token_id - 1) % shape.users + 1
}
