//! new-api's rows as logbus events (docs/events.md), pure: a `logs` row becomes a log event
//! with a deterministic `event_id`, a `users` or `tokens` row an identity event whose
//! credential is hashed here (the plain access token or key never goes further), and whose
//! status says whether new-api would let it in.

use logbus_projections::identity::{
    IdentityEvent, Secret, TokenIdentity, UserIdentity, hash_access_token, hash_token_key,
};
use logbus_projections::rows::identity_codes::{STATUS_DISABLED, STATUS_ENABLED};
use serde::Serialize;
use uuid::Uuid;

/// Root of the namespaces of names given with `--namespace` (a name that is not a UUID is
/// hashed under it into one).
const NAMESPACE_ROOT: Uuid = Uuid::from_u128(0x6c6f_6762_7573_5000_8000_6272_6964_6765);

/// new-api's token status codes (`common/constants.go`).
pub const TOKEN_STATUS_ENABLED: i64 = 1;
/// new-api's user status "enabled" (`common.UserStatusEnabled`).
pub const USER_STATUS_ENABLED: i64 = 1;

/// The namespace of one new-api installation's event ids: `--namespace` as a UUID, or a name
/// hashed into one. Two installations bridged into one logbus need two namespaces; changing
/// it re-identifies every row (and so would store every row again).
pub fn namespace_uuid(namespace: &str) -> Uuid {
    Uuid::parse_str(namespace.trim())
        .unwrap_or_else(|_| Uuid::new_v5(&NAMESPACE_ROOT, namespace.trim().as_bytes()))
}

/// The event id of `logs` row `id`: the same on every run, so a re-published row is stored once.
pub fn log_event_id(namespace: &Uuid, id: i64) -> Uuid {
    Uuid::new_v5(namespace, format!("logs/{id}").as_bytes())
}

/// One `logs` row as the source query returns it: every column new-api has, NULLs already
/// read as 0 or '' (new-api's own defaults), optional columns ('' where the schema lacks them).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct LogSourceRow {
    pub id: i64,
    pub user_id: i64,
    pub created_at: i64,
    pub log_type: i64,
    pub content: String,
    pub username: String,
    pub token_name: String,
    pub model_name: String,
    pub quota: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub use_time: i64,
    pub is_stream: i64,
    pub channel_id: i64,
    pub token_id: i64,
    pub log_group: String,
    pub ip: String,
    pub other: String,
    pub request_id: String,
    pub upstream_request_id: String,
}

/// A log event in the contract's field names. Numbers keep the source's 64 bits, so that a row
/// the contract refuses (a `use_time` beyond 32 bits, `type` 0) is still published, and ingest
/// dead-letters it with its reason instead of the bridge dropping or altering it.
#[derive(Debug, Serialize)]
pub struct BridgeLogEvent<'a> {
    pub event_id: Uuid,
    pub created_at: i64,
    #[serde(rename = "type")]
    pub log_type: i64,
    pub user_id: i64,
    pub username: &'a str,
    pub token_id: i64,
    pub token_name: &'a str,
    pub model_name: &'a str,
    pub quota: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub use_time: i64,
    pub is_stream: bool,
    pub channel_id: i64,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub channel_name: &'a str,
    pub group: &'a str,
    pub ip: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub request_id: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub upstream_request_id: &'a str,
    pub content: &'a str,
    /// new-api's `other` column as it is: a string holding a JSON object (or empty).
    pub other: &'a str,
}

impl LogSourceRow {
    pub fn event<'a>(&'a self, namespace: &Uuid, channel_name: &'a str) -> BridgeLogEvent<'a> {
        BridgeLogEvent {
            event_id: log_event_id(namespace, self.id),
            created_at: self.created_at,
            log_type: self.log_type,
            user_id: self.user_id,
            username: &self.username,
            token_id: self.token_id,
            token_name: &self.token_name,
            model_name: &self.model_name,
            quota: self.quota,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            use_time: self.use_time,
            is_stream: self.is_stream != 0,
            channel_id: self.channel_id,
            channel_name,
            group: &self.log_group,
            ip: &self.ip,
            request_id: &self.request_id,
            upstream_request_id: &self.upstream_request_id,
            content: &self.content,
            other: &self.other,
        }
    }

    /// The Kafka key of the event: the user id, as the contract wants.
    pub fn key(&self) -> String {
        self.user_id.to_string()
    }
}

/// One `users` row. The access token is read into a [`Secret`] at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSourceRow {
    pub id: i64,
    pub username: String,
    pub role: i64,
    pub status: i64,
    pub user_group: String,
    pub access_token: Secret,
    /// 1 when `deleted_at` is set (gorm's soft delete).
    pub deleted: i64,
}

/// One `tokens` row. The key is read into a [`Secret`] at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSourceRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub token_key: Secret,
    pub status: i64,
    /// Unix seconds; -1: never expires.
    pub expired_time: i64,
    pub remain_quota: i64,
    pub unlimited_quota: i64,
    pub deleted: i64,
}

/// `FromRow` for a row type of any backend whose columns are BIGINTs and texts (what the
/// dialect's queries return), the credential column read straight into a [`Secret`].
macro_rules! identity_from_row {
    ($row_type:ident { $($int:ident),* ; $($text:ident),* ; $secret:ident }) => {
        impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for $row_type
        where
            &'static str: sqlx::ColumnIndex<R>,
            i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        {
            fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
                Ok(Self {
                    $($int: row.try_get(stringify!($int))?,)*
                    $($text: row.try_get(stringify!($text))?,)*
                    $secret: Secret::new(row.try_get::<String, _>(stringify!($secret))?),
                })
            }
        }
    };
}

identity_from_row!(UserSourceRow { id, role, status, deleted; username, user_group; access_token });
identity_from_row!(TokenSourceRow {
    id, user_id, status, expired_time, remain_quota, unlimited_quota, deleted;
    name;
    token_key
});

fn to_i32(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(if value < 0 { i32::MIN } else { i32::MAX })
}

impl UserSourceRow {
    /// Enabled only while new-api would let the user in: status 1 and not soft-deleted.
    pub fn enabled(&self) -> bool {
        self.status == USER_STATUS_ENABLED && self.deleted == 0
    }

    /// The identity event (version set by the caller), the access token hashed.
    pub fn identity(&self, version: u64) -> IdentityEvent {
        let token = self.access_token.expose().trim();
        IdentityEvent::User(UserIdentity {
            id: self.id,
            username: self.username.clone(),
            role: to_i32(self.role),
            status: if self.enabled() {
                STATUS_ENABLED
            } else {
                STATUS_DISABLED
            },
            group: self.user_group.clone(),
            access_token_sha256: (!token.is_empty()).then(|| hash_access_token(token)),
            access_token: None,
            version,
        })
    }
}

impl TokenSourceRow {
    /// Enabled only while new-api's relay would accept the key at `now` (unix seconds): status
    /// 1, not soft-deleted, not expired, not exhausted (`ValidateUserToken`).
    pub fn enabled(&self, now: i64) -> bool {
        self.status == TOKEN_STATUS_ENABLED
            && self.deleted == 0
            && (self.expired_time == -1 || self.expired_time >= now)
            && (self.unlimited_quota != 0 || self.remain_quota > 0)
    }

    pub fn identity(&self, now: i64, version: u64) -> IdentityEvent {
        let key = self.token_key.expose().trim();
        IdentityEvent::Token(TokenIdentity {
            id: self.id,
            user_id: self.user_id,
            name: self.name.clone(),
            key_sha256: (!key.is_empty()).then(|| hash_token_key(key)),
            key: None,
            status: if self.enabled(now) {
                STATUS_ENABLED
            } else {
                STATUS_DISABLED
            },
            version,
        })
    }
}

/// The Kafka key of an identity event (`user:<id>` / `token:<id>`).
pub fn identity_key(event: &IdentityEvent) -> String {
    match event {
        IdentityEvent::User(u) => format!("user:{}", u.id),
        IdentityEvent::Token(t) => format!("token:{}", t.id),
    }
}

/// `event` with another version: what the change detector compares (everything but the
/// version) and what it re-publishes.
pub fn with_version(event: &IdentityEvent, version: u64) -> IdentityEvent {
    let mut event = event.clone();
    match &mut event {
        IdentityEvent::User(u) => u.version = version,
        IdentityEvent::Token(t) => t.version = version,
    }
    event
}

/// `event` disabled (a row that disappeared from the source: a hard delete).
pub fn disabled(event: &IdentityEvent) -> IdentityEvent {
    let mut event = event.clone();
    match &mut event {
        IdentityEvent::User(u) => u.status = STATUS_DISABLED,
        IdentityEvent::Token(t) => t.status = STATUS_DISABLED,
    }
    event
}

#[cfg(test)]
mod tests;
