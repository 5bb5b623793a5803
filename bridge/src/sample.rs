//! Deterministic new-api-shaped rows and the `INSERT` statements that put them into a source
//! database created by [`crate::newapi_schema`]: for the demo database, the tests and the
//! benchmark. Credentials look like new-api's own: 32 base64 characters for an access token,
//! 48 alphanumerics for a token key (stored without `sk-`).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::dialect::Dialect;
use crate::mapping::LogSourceRow;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleUser {
    pub id: i64,
    pub username: String,
    pub role: i64,
    pub status: i64,
    pub group: String,
    pub access_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub key: String,
    pub status: i64,
    pub expired_time: i64,
    pub remain_quota: i64,
    pub unlimited_quota: bool,
}

fn random_text(rng: &mut StdRng, alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const ALPHANUMERIC: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const GROUPS: [&str; 3] = ["default", "vip", "svip"];
const MODELS: [&str; 4] = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "deepseek-chat"];

/// `count` users (user 1 is root, role 100; every 10th an admin), each with an access token.
pub fn users(seed: u64, count: usize) -> Vec<SampleUser> {
    users_from(seed, 1, count)
}

/// `count` users with ids from `first_id` (the first is root, role 100; every 10th an admin),
/// each with an access token.
pub fn users_from(seed: u64, first_id: i64, count: usize) -> Vec<SampleUser> {
    let mut rng = StdRng::seed_from_u64(seed);
    (first_id..first_id + count as i64)
        .map(|id| SampleUser {
            id,
            username: if id == first_id {
                "root".into()
            } else {
                format!("user{id}")
            },
            role: match id {
                _ if id == first_id => 100,
                _ if id % 10 == 0 => 10,
                _ => 1,
            },
            status: 1,
            group: GROUPS[id as usize % GROUPS.len()].into(),
            access_token: random_text(&mut rng, BASE64, 32),
        })
        .collect()
}

/// `per_user` tokens per user, enabled and unlimited, never expiring; token `n` of user `u`
/// has id `(u - 1) * per_user + n + 1` (ids from 1 for users from 1), as [`log`] assumes.
pub fn tokens(seed: u64, users: &[SampleUser], per_user: usize) -> Vec<SampleToken> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7031);
    let mut out = Vec::new();
    for user in users {
        for n in 0..per_user {
            out.push(SampleToken {
                id: (user.id - 1) * per_user as i64 + n as i64 + 1,
                user_id: user.id,
                name: format!("{}-key{n}", user.username),
                key: random_text(&mut rng, ALPHANUMERIC, 48),
                status: 1,
                expired_time: -1,
                remain_quota: 0,
                unlimited_quota: true,
            });
        }
    }
    out
}

/// Log row number `n` (0-based), created at `start + n / per_second`, of one of `users` and
/// its tokens (`tokens_per_user` each); `id` is left 0 for the database to assign.
pub fn log(
    n: u64,
    start: i64,
    per_second: u64,
    users: &[SampleUser],
    tokens_per_user: usize,
) -> LogSourceRow {
    let user = &users[(n % users.len() as u64) as usize];
    let token =
        (user.id - 1) * tokens_per_user as i64 + 1 + (n / 7 % tokens_per_user.max(1) as u64) as i64;
    let log_type = match n % 50 {
        0 => 1,
        1 => 5,
        2 => 3,
        _ => 2,
    };
    let model = MODELS[(n % MODELS.len() as u64) as usize];
    let consume = log_type == 2;
    let quota = if consume {
        (n * 37 % 5_000) as i64 + 10
    } else {
        0
    };
    LogSourceRow {
        id: 0,
        user_id: user.id,
        created_at: start + (n / per_second.max(1)) as i64,
        log_type,
        content: if consume {
            format!("模型倍率 2.50，补全倍率 4.00，分组倍率 1, request {n}")
        } else {
            format!("系统消息 {n}")
        },
        username: user.username.clone(),
        token_name: format!(
            "{}-key{}",
            user.username,
            (token - 1) % tokens_per_user.max(1) as i64
        ),
        model_name: if consume { model.into() } else { String::new() },
        quota,
        prompt_tokens: if consume { (n % 2_000) as i64 + 1 } else { 0 },
        completion_tokens: if consume { (n % 700) as i64 } else { 0 },
        use_time: (n % 30) as i64,
        is_stream: i64::from(n.is_multiple_of(3)),
        channel_id: (n % 5) as i64 + 1,
        token_id: if log_type == 1 { 0 } else { token },
        log_group: user.group.clone(),
        ip: format!("203.0.113.{}", n % 250),
        other: if consume {
            format!(
                r#"{{"model_ratio":2.5,"completion_ratio":4,"admin_info":{{"use_channel":["{}"]}}}}"#,
                n % 5 + 1
            )
        } else {
            String::new()
        },
        request_id: format!("req-{n:08x}"),
        upstream_request_id: String::new(),
    }
}

/// A string literal of `dialect` (MySQL also escapes backslashes by default).
fn literal(dialect: Dialect, text: &str) -> String {
    let mut out = text.replace('\'', "''");
    if dialect == Dialect::MySql {
        out = out.replace('\\', "\\\\");
    }
    format!("'{out}'")
}

fn boolean(dialect: Dialect, value: bool) -> &'static str {
    match (dialect, value) {
        (Dialect::Postgres, true) => "true",
        (Dialect::Postgres, false) => "false",
        (_, true) => "1",
        (_, false) => "0",
    }
}

/// One multi-row `INSERT` of `rows` into `logs` (ids assigned by the database).
pub fn insert_logs(dialect: Dialect, rows: &[LogSourceRow]) -> String {
    let q = |name: &str| dialect.quote(name);
    let values: Vec<String> = rows
        .iter()
        .map(|r| {
            let l = |s: &str| literal(dialect, s);
            format!(
                "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
                r.user_id,
                r.created_at,
                r.log_type,
                l(&r.content),
                l(&r.username),
                l(&r.token_name),
                l(&r.model_name),
                r.quota,
                r.prompt_tokens,
                r.completion_tokens,
                r.use_time,
                boolean(dialect, r.is_stream != 0),
                r.channel_id,
                r.token_id,
                l(&r.log_group),
                l(&r.ip),
                l(&r.other),
                l(&r.request_id),
            )
        })
        .collect();
    format!(
        "INSERT INTO logs (user_id, created_at, {}, content, username, token_name, model_name, \
         quota, prompt_tokens, completion_tokens, use_time, is_stream, channel_id, token_id, {}, \
         ip, other, request_id) VALUES {}",
        q("type"),
        q("group"),
        values.join(", ")
    )
}

/// One `INSERT` of `users` (password: a placeholder bcrypt-shaped hash).
pub fn insert_users(dialect: Dialect, users: &[SampleUser]) -> String {
    let values: Vec<String> = users
        .iter()
        .map(|u| {
            let l = |s: &str| literal(dialect, s);
            format!(
                "({}, {}, {}, {}, {}, {}, {}, {}, 0)",
                u.id,
                l(&u.username),
                l("$2a$10$placeholderplaceholderplaceholderplaceholder"),
                l(&u.username),
                u.role,
                u.status,
                l(&u.group),
                l(&u.access_token),
            )
        })
        .collect();
    format!(
        "INSERT INTO users (id, username, password, display_name, role, status, {}, \
         access_token, created_at) VALUES {}",
        dialect.quote("group"),
        values.join(", ")
    )
}

/// One `INSERT` of `tokens`.
pub fn insert_tokens(dialect: Dialect, tokens: &[SampleToken]) -> String {
    let values: Vec<String> = tokens
        .iter()
        .map(|t| {
            format!(
                "({}, {}, {}, {}, {}, 0, 0, {}, {}, {}, 'default')",
                t.id,
                t.user_id,
                literal(dialect, &t.name),
                literal(dialect, &t.key),
                t.status,
                t.expired_time,
                t.remain_quota,
                boolean(dialect, t.unlimited_quota),
            )
        })
        .collect();
    format!(
        "INSERT INTO tokens (id, user_id, name, {}, status, created_time, accessed_time, \
         expired_time, remain_quota, unlimited_quota, {}) VALUES {}",
        dialect.quote("key"),
        dialect.quote("group"),
        values.join(", ")
    )
}

/// Channels 1..=5 (the sample logs use them), named `channel-<id>`.
pub fn insert_channels(dialect: Dialect) -> String {
    let values: Vec<String> = (1..=5)
        .map(|id| format!("({id}, 1, 'sk-upstream-{id}', 1, 'channel-{id}')"))
        .collect();
    format!(
        "INSERT INTO channels (id, {}, {}, status, name) VALUES {}",
        dialect.quote("type"),
        dialect.quote("key"),
        values.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_deterministic_and_shaped_like_new_apis() {
        let users = users(7, 5);
        assert_eq!(users, super::users(7, 5));
        assert_eq!((users[0].username.as_str(), users[0].role), ("root", 100));
        assert!(users.iter().all(|u| u.access_token.len() == 32));
        let tokens = tokens(7, &users, 2);
        assert_eq!(tokens.len(), 10);
        assert!(
            tokens
                .iter()
                .all(|t| t.key.len() == 48 && t.key.chars().all(|c| c.is_ascii_alphanumeric()))
        );
        let row = log(3, 1_764_000_000, 10, &users, 2);
        let token = &tokens[(row.token_id - 1) as usize];
        assert_eq!(
            (token.user_id, token.name.as_str()),
            (row.user_id, row.token_name.as_str())
        );
        assert!(serde_json::from_str::<serde_json::Value>(&row.other).is_ok());
    }

    #[test]
    fn literals_are_escaped_per_dialect() {
        assert_eq!(literal(Dialect::Postgres, r"it's \n"), r"'it''s \n'");
        assert_eq!(literal(Dialect::MySql, r"it's \n"), r"'it''s \\n'");
        let sql = insert_logs(Dialect::MySql, &[log(0, 1, 1, &users(1, 1), 1)]);
        assert!(
            sql.starts_with("INSERT INTO logs (user_id, created_at, `type`"),
            "{sql}"
        );
    }
}
