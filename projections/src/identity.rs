//! The `gateway.identity` event contract: users and tokens, newest `version` wins.
//! Plain access tokens and token keys are hashed here and never leave this module.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use logbus_runtime::Secret;

use crate::reject::{RejectKind, Rejection};
use crate::rows::{TokenRow, UserRow};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum IdentityEvent {
    User(UserIdentity),
    Token(TokenIdentity),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserIdentity {
    pub id: i64,
    #[serde(default)]
    pub username: String,
    pub role: i32,
    pub status: i32,
    #[serde(default)]
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<Secret>,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenIdentity {
    pub id: i64,
    pub user_id: i64,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    pub status: i32,
    pub version: u64,
}

/// SHA-256 hex of a user's access token, as stored in `users.access_token_sha256`.
pub fn hash_access_token(access_token: &str) -> String {
    hex::encode(Sha256::digest(access_token.as_bytes()))
}

/// SHA-256 hex of a token key without its `sk-` prefix, as stored in `tokens.key_sha256`.
pub fn hash_token_key(key: &str) -> String {
    let key = key.strip_prefix("sk-").unwrap_or(key);
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn invalid(reason: impl Into<String>) -> Rejection {
    Rejection::new(RejectKind::InvalidIdentity, reason)
}

fn normalized_sha256(field: &str, hex_digest: &str) -> Result<String, Rejection> {
    if hex_digest.len() == 64 && hex_digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex_digest.to_ascii_lowercase())
    } else {
        Err(invalid(format!("{field} must be 64 hex characters")))
    }
}

/// Picks the stored hash from a pre-hashed or a plain credential; a credential may be absent
/// (a user without an access token cannot call the API, but still has a name and a role).
fn credential_hash(
    hash_field: &str,
    hashed: Option<&str>,
    plain: Option<&Secret>,
    hash_plain: fn(&str) -> String,
) -> Result<String, Rejection> {
    match (hashed, plain) {
        (Some(hashed), _) if !hashed.is_empty() => normalized_sha256(hash_field, hashed),
        (_, Some(plain)) if !plain.is_empty() => Ok(hash_plain(plain.expose())),
        _ => Ok(String::new()),
    }
}

impl UserIdentity {
    pub fn into_row(self) -> Result<UserRow, Rejection> {
        Ok(UserRow {
            access_token_sha256: credential_hash(
                "access_token_sha256",
                self.access_token_sha256.as_deref(),
                self.access_token.as_ref(),
                hash_access_token,
            )?,
            id: self.id,
            username: self.username,
            role: self.role,
            status: self.status,
            group: self.group,
            version: self.version,
        })
    }
}

impl TokenIdentity {
    pub fn into_row(self) -> Result<TokenRow, Rejection> {
        Ok(TokenRow {
            key_sha256: credential_hash(
                "key_sha256",
                self.key_sha256.as_deref(),
                self.key.as_ref(),
                hash_token_key,
            )?,
            id: self.id,
            user_id: self.user_id,
            name: self.name,
            status: self.status,
            version: self.version,
        })
    }
}

/// The row an identity message becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityRow {
    User(UserRow),
    Token(TokenRow),
}

/// Parses one identity message (a single JSON object).
pub fn parse_identity_event(payload: &[u8]) -> Result<IdentityEvent, Rejection> {
    serde_json::from_slice(payload).map_err(|e| invalid(format!("invalid identity event: {e}")))
}

/// Validates one identity message of at most `max_event_bytes` into its row, plain
/// credentials hashed.
pub fn parse_identity_message(
    payload: &[u8],
    max_event_bytes: usize,
) -> Result<IdentityRow, Rejection> {
    if payload.len() > max_event_bytes {
        return Err(Rejection::oversized(payload.len(), max_event_bytes));
    }
    match parse_identity_event(payload)? {
        IdentityEvent::User(user) => user.into_row().map(IdentityRow::User),
        IdentityEvent::Token(token) => token.into_row().map(IdentityRow::Token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_credentials_are_hashed_and_hidden_from_debug() {
        let event = parse_identity_event(
            br#"{"kind":"token","id":5,"user_id":2,"name":"ci","key":"sk-abc","status":1,"version":3}"#,
        )
        .expect("valid");
        assert!(!format!("{event:?}").contains("abc"));
        let IdentityEvent::Token(token) = event else {
            panic!("expected a token event")
        };
        let row = token.into_row().expect("valid");
        assert_eq!(row.key_sha256, hash_token_key("abc"));
        assert_eq!(row.key_sha256, hash_token_key("sk-abc"));
    }

    #[test]
    fn prehashed_credentials_are_checked_and_lowercased() {
        let upper = "A".repeat(64);
        let event = format!(
            r#"{{"kind":"user","id":1,"role":10,"status":1,"access_token_sha256":"{upper}","version":1}}"#
        );
        let IdentityEvent::User(user) = parse_identity_event(event.as_bytes()).expect("valid")
        else {
            panic!("expected a user event")
        };
        assert_eq!(
            user.into_row().expect("valid").access_token_sha256,
            "a".repeat(64)
        );
        let bad = br#"{"kind":"user","id":1,"role":10,"status":1,"access_token_sha256":"zz","version":1}"#;
        let IdentityEvent::User(user) = parse_identity_event(bad).expect("parses") else {
            panic!("expected a user event")
        };
        assert!(user.into_row().is_err());
        assert!(parse_identity_event(br#"{"kind":"group","id":1}"#).is_err());
    }

    #[test]
    fn identity_rejections_are_classified() {
        let user = br#"{"kind":"user","id":1,"role":10,"status":1,"version":1}"#;
        assert!(matches!(
            parse_identity_message(user, 1024),
            Ok(IdentityRow::User(_))
        ));
        assert_eq!(
            parse_identity_message(user, 10).unwrap_err().kind,
            RejectKind::Oversized
        );
        assert_eq!(
            parse_identity_message(b"{", 1024).unwrap_err().kind,
            RejectKind::InvalidIdentity
        );
        let bad_hash =
            br#"{"kind":"token","id":1,"user_id":1,"key_sha256":"zz","status":1,"version":1}"#;
        assert_eq!(
            parse_identity_message(bad_hash, 1024).unwrap_err().kind,
            RejectKind::InvalidIdentity
        );
    }
}
