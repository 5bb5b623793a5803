//! Deterministic data set shaped like a high-volume new-api gateway: diurnal traffic with
//! bursts, Zipf-distributed user activity, tokens owned by users, Zipf model popularity.
//! The same seed gives the same rows, which go to logbus and to the PostgreSQL baseline alike.

use logbus_projections::identity::{hash_access_token, hash_token_key};
use logbus_projections::rows::{LogRow, TokenRow, UserRow};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

pub const GROUPS: [&str; 4] = ["default", "vip", "svip", "enterprise"];
const MODEL_BASES: [&str; 20] = [
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
const TOKEN_NAMES: [&str; 8] = [
    "default", "ci", "prod", "dev", "test", "app", "bot", "backup",
];
/// Error messages of type-5 rows; the search keyword's default is one of them.
const ERRORS: [&str; 8] = [
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
/// Access tokens the benchmark uses to authenticate against the query API.
pub const ADMIN_ACCESS_TOKEN: &str = "bench-admin-access-token-0000000000";
pub const SELF_ACCESS_TOKEN: &str = "bench-user-access-token-00000000000";

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

/// Plain key (without `sk-`) of token `id`, whose SHA-256 is stored in `tokens`.
pub fn token_key(id: u32) -> String {
    format!("bench{id:043}")
}

/// Tokens of user u: u, u + users, u + 2*users, ... up to `tokens`.
pub fn token_owner(shape: &Shape, token_id: u32) -> u32 {
    (token_id - 1) % shape.users + 1
}

/// Admin user id: one above the gateway users.
pub fn admin_id(shape: &Shape) -> u32 {
    shape.users + 1
}

/// Cumulative Zipf(s) weights over 1..=n, for inverse-CDF sampling.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u32, s: f64) -> Self {
        let mut acc = 0.0;
        let cdf = (1..=n.max(1))
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect::<Vec<_>>();
        let total = acc;
        Zipf {
            cdf: cdf.into_iter().map(|c| c / total).collect(),
        }
    }
    /// 1-based rank.
    fn sample(&self, rng: &mut StdRng) -> u32 {
        let x: f64 = rng.random();
        (self.cdf.partition_point(|&c| c < x).min(self.cdf.len() - 1) + 1) as u32
    }
}

/// Rows per minute over the span: a diurnal curve (peak at 14:00 UTC, trough at 02:00, 6:1)
/// with random bursts (2% of minutes at 3-6x).
fn minute_counts(shape: &Shape, rng: &mut StdRng) -> Vec<u64> {
    let minutes = shape.span_days as usize * 1440;
    let weights: Vec<f64> = (0..minutes)
        .map(|m| {
            let hour = (m % 1440) as f64 / 60.0;
            let diurnal = 3.5 + 2.5 * ((hour - 8.0) / 24.0 * std::f64::consts::TAU).sin();
            let burst = if rng.random::<f64>() < 0.02 {
                rng.random_range(3.0..6.0)
            } else {
                1.0
            };
            diurnal * burst
        })
        .collect();
    let total: f64 = weights.iter().sum();
    let mut counts: Vec<u64> = weights
        .iter()
        .map(|w| (w / total * shape.rows as f64).floor() as u64)
        .collect();
    let mut assigned: u64 = counts.iter().sum();
    let mut i = 0usize;
    while assigned < shape.rows {
        counts[(i * 7919) % minutes] += 1;
        assigned += 1;
        i += 1;
    }
    counts
}

/// Streams the data set in `created_at` order (so PostgreSQL's bigserial ids follow time, as
/// they do on a gateway), in chunks of at most `chunk` rows.
pub struct Generator {
    shape: Shape,
    rng: StdRng,
    users: Zipf,
    models: Zipf,
    counts: Vec<u64>,
    minute: usize,
    start: u32,
    models_names: Vec<String>,
}

impl Generator {
    pub fn new(shape: Shape) -> Self {
        let mut rng = StdRng::seed_from_u64(shape.seed);
        let counts = minute_counts(&shape, &mut rng);
        let start = shape.end - shape.span_days * 86_400;
        Generator {
            users: Zipf::new(shape.users, 1.0),
            models: Zipf::new(shape.models, 1.1),
            models_names: (0..shape.models).map(model_name).collect(),
            shape,
            rng,
            counts,
            minute: 0,
            start,
        }
    }

    /// Next chunk of at least one whole minute (up to about `chunk` rows); None at the end.
    pub fn next_chunk(&mut self, chunk: usize) -> Option<Vec<LogRow>> {
        if self.minute >= self.counts.len() {
            return None;
        }
        let mut out = Vec::with_capacity(chunk + 1024);
        while self.minute < self.counts.len() && out.len() < chunk {
            let n = self.counts[self.minute];
            let base = self.start + self.minute as u32 * 60;
            let mut secs: Vec<u32> = (0..n).map(|_| self.rng.random_range(0..60)).collect();
            secs.sort_unstable();
            for s in secs {
                let row = self.row(base + s);
                out.push(row);
            }
            self.minute += 1;
        }
        Some(out)
    }

    pub fn row(&mut self, created_at: u32) -> LogRow {
        let shape = &self.shape;
        let rng = &mut self.rng;
        let user = self.users.sample(rng);
        let owned = shape
            .tokens
            .saturating_sub(user - 1)
            .div_ceil(shape.users)
            .max(1);
        let token_id = user + shape.users * rng.random_range(0..owned);
        let token_id = if token_id > shape.tokens { 0 } else { token_id };
        let model_idx = self.models.sample(rng) - 1;
        let model = self.models_names[model_idx as usize].clone();
        let channel = (model_idx * 3 + rng.random_range(0..2)) % shape.channels.max(1) + 1;
        let t: f64 = rng.random();
        let log_type: u8 = if t < 0.95 {
            2
        } else if t < 0.98 {
            5
        } else if t < 0.985 {
            1
        } else if t < 0.99 {
            3
        } else if t < 0.995 {
            4
        } else if t < 0.998 {
            6
        } else {
            7
        };
        let group = user_group(shape, user).to_string();
        let model_ratio =
            [0.075, 1.25, 1.5, 0.135, 1.0, 0.05, 1.2, 1.5, 0.275, 0.55][model_idx as usize % 10];
        let completion_ratio =
            [4.0, 4.0, 5.0, 2.0, 4.0, 4.0, 3.0, 5.0, 4.0, 4.0][model_idx as usize % 10];
        let group_ratio = match group.as_str() {
            "vip" => 0.9,
            "svip" => 0.8,
            "enterprise" => 0.7,
            _ => 1.0,
        };
        let (prompt, completion, quota, content, other, use_time, is_stream) = match log_type {
            2 => {
                let prompt = (rng.random::<f64>().powi(3) * 30_000.0) as i64 + 20;
                let completion = (rng.random::<f64>().powi(2) * 3_000.0) as i64;
                let quota = ((prompt as f64 + completion as f64 * completion_ratio)
                    * model_ratio
                    * group_ratio) as i64
                    + 1;
                let content = format!(
                    "模型倍率 {model_ratio:.2}，补全倍率 {completion_ratio:.2}，分组倍率 {group_ratio:.2}"
                );
                let other = format!(
                    r#"{{"admin_info":{{"use_channel":["{channel}"]}},"cache_ratio":1,"cache_tokens":0,"completion_ratio":{completion_ratio},"frt":{},"group_ratio":{group_ratio},"model_price":-1,"model_ratio":{model_ratio}}}"#,
                    rng.random_range(150..4000)
                );
                let stream = rng.random::<f64>() < 0.7;
                (
                    prompt,
                    completion,
                    quota,
                    content,
                    other,
                    rng.random_range(1..40),
                    stream,
                )
            }
            5 => {
                // The last error kind is rare (about 1 row in 100,000): the rare-keyword search.
                let e = if rng.random_range(0..3_000) == 0 {
                    ERRORS[ERRORS.len() - 1]
                } else {
                    ERRORS[rng.random_range(0..ERRORS.len() - 1)]
                };
                let other = format!(
                    r#"{{"admin_info":{{"use_channel":["{channel}"]}},"error_code":"{}","status_code":{}}}"#,
                    e.split(':').next().unwrap_or(e),
                    [429, 500, 503, 400][rng.random_range(0..4)]
                );
                (
                    0,
                    0,
                    0,
                    e.to_string(),
                    other,
                    rng.random_range(0..60),
                    false,
                )
            }
            1 => {
                let usd = [5, 10, 20, 50, 100][rng.random_range(0..5)];
                (
                    0,
                    0,
                    usd * 500_000,
                    format!("通过兑换码充值 ＄{usd}.000000 额度"),
                    String::new(),
                    0,
                    false,
                )
            }
            3 => (
                0,
                0,
                0,
                format!(
                    "管理员将用户额度从 ＄{}.00 修改为 ＄{}.00",
                    rng.random_range(0..100),
                    rng.random_range(0..500)
                ),
                String::new(),
                0,
                false,
            ),
            4 => (
                0,
                0,
                0,
                format!(
                    "通道「channel-{channel}」（#{channel}）已被禁用，原因：upstream status 401"
                ),
                String::new(),
                0,
                false,
            ),
            6 => {
                let q = rng.random_range(100..50_000);
                (
                    0,
                    0,
                    q,
                    format!("异步任务失败退还额度 {q}"),
                    String::new(),
                    0,
                    false,
                )
            }
            _ => (
                0,
                0,
                0,
                format!(
                    "用户登录，IP: 10.{}.{}.{}",
                    user % 250,
                    user / 250 % 250,
                    1 + user % 200
                ),
                String::new(),
                0,
                false,
            ),
        };
        let mut id_bytes = [0u8; 16];
        rng.fill(&mut id_bytes);
        let rid: u64 = rng.random();
        let urid: u128 = rng.random();
        LogRow {
            event_id: uuid::Builder::from_random_bytes(id_bytes).into_uuid(),
            created_at,
            log_type,
            user_id: user as i64,
            username: username(user),
            token_id: token_id as i64,
            token_name: if token_id == 0 {
                String::new()
            } else {
                token_name(token_id)
            },
            model_name: if log_type == 2 || log_type == 5 {
                model
            } else {
                String::new()
            },
            quota,
            prompt_tokens: prompt,
            completion_tokens: completion,
            use_time,
            is_stream,
            channel_id: if log_type == 2 || log_type == 5 {
                channel as i64
            } else {
                0
            },
            channel_name: if log_type == 2 || log_type == 5 {
                format!("channel-{channel}")
            } else {
                String::new()
            },
            group,
            ip: format!("10.{}.{}.{}", user % 250, user / 250 % 250, 1 + rid % 200),
            request_id: format!("{created_at}{rid:016x}"),
            upstream_request_id: if log_type == 2 {
                format!("chatcmpl-{:024x}", urid & ((1u128 << 96) - 1))
            } else {
                String::new()
            },
            content,
            other,
            ingest_batch: 0,
        }
    }
}

/// Identity rows: every gateway user, one admin, every token.
pub fn identity(shape: &Shape) -> (Vec<UserRow>, Vec<TokenRow>) {
    let mut users: Vec<UserRow> = (1..=shape.users)
        .map(|id| UserRow {
            id: id as i64,
            username: username(id),
            role: 1,
            status: 1,
            group: user_group(shape, id).to_string(),
            access_token_sha256: hash_access_token(&if id == 1 {
                SELF_ACCESS_TOKEN.to_string()
            } else {
                format!("bench-user-{id}")
            }),
            version: 1,
        })
        .collect();
    users.push(UserRow {
        id: admin_id(shape) as i64,
        username: "admin".into(),
        role: 100,
        status: 1,
        group: "default".into(),
        access_token_sha256: hash_access_token(ADMIN_ACCESS_TOKEN),
        version: 1,
    });
    let tokens = (1..=shape.tokens)
        .map(|id| TokenRow {
            id: id as i64,
            user_id: token_owner(shape, id) as i64,
            name: token_name(id),
            key_sha256: hash_token_key(&token_key(id)),
            status: 1,
            version: 1,
        })
        .collect();
    (users, tokens)
}

/// A new-api log event (the JSON a gateway publishes) for a row.
pub fn event_json(row: &LogRow) -> String {
    let mut v = serde_json::json!({
        "event_id": row.event_id.to_string(),
        "created_at": row.created_at,
        "type": row.log_type,
        "user_id": row.user_id,
        "username": row.username,
        "token_id": row.token_id,
        "token_name": row.token_name,
        "model_name": row.model_name,
        "quota": row.quota,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
        "use_time": row.use_time,
        "is_stream": row.is_stream,
        "channel_id": row.channel_id,
        "channel_name": row.channel_name,
        "group": row.group,
        "ip": row.ip,
        "request_id": row.request_id,
        "upstream_request_id": row.upstream_request_id,
        "content": row.content,
    });
    if !row.other.is_empty() {
        v["other"] = serde_json::from_str(&row.other).unwrap_or(serde_json::Value::Null);
    }
    v.to_string()
}

pub fn new_event_id(rng: &mut StdRng) -> Uuid {
    let mut b = [0u8; 16];
    rng.fill(&mut b);
    uuid::Builder::from_random_bytes(b).into_uuid()
}
