//! Dead letters never carry a plain credential (docs/events.md, "Dead letters"). An identity
//! event may hold a user's plain `access_token` or a token's plain `key`; when such an event is
//! refused (invalid, oversized, or rejected by ClickHouse) its dead letter carries it with
//! every `access_token` / `key` member, at any depth, replaced by its SHA-256 hash under the
//! contract's name (`access_token_sha256`, `key_sha256`), hashed as [`crate::identity`] hashes
//! it, so that the redacted letter, once fixed, can be republished and gives the same row.
//!
//! A payload that is not JSON cannot be redacted reliably (a member name may be escaped, the
//! text may be truncated mid-value), so an identity payload that is not JSON is withheld: the
//! letter carries no payload, and its source headers point at the original message. Log
//! events carry no credential by contract; a log dead letter is only rewritten when it is JSON
//! holding one of those members (an identity event published to the logs topic by mistake).
//!
//! The parser's reasons may quote a value (`invalid type: integer `123``): every plain value
//! found is also removed from the reason ([`Redaction::scrub`]).

use serde_json::{Map, Value};

use crate::identity::{hash_access_token, hash_token_key};

/// How the identity contract hashes a plain credential.
type Hash = fn(&str) -> String;

/// The plain credential members, the member their hash goes to, and how it is hashed.
const CREDENTIALS: [(&str, &str, Hash); 2] = [
    ("access_token", "access_token_sha256", hash_access_token),
    ("key", "key_sha256", hash_token_key),
];

/// What replaces a plain value quoted in a reason.
pub const REDACTED: &str = "<redacted>";

/// A dead letter's payload with its credentials removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redaction {
    /// The payload to send: the original bytes when there was nothing to redact.
    pub payload: Vec<u8>,
    /// Why the payload was withheld (then [`Self::payload`] is empty).
    pub withheld: Option<&'static str>,
    /// The plain values removed, to be scrubbed from the reason.
    secrets: Vec<String>,
}

impl Redaction {
    /// `reason` with every removed plain value replaced by [`REDACTED`]. When the payload was
    /// withheld its values are unknown, so a reason that quotes anything is replaced whole.
    pub fn scrub(&self, reason: &str) -> String {
        if self.withheld.is_some() && reason.contains(['`', '"', '\'']) {
            return "invalid identity event: not valid JSON".to_owned();
        }
        let mut reason = reason.to_owned();
        for secret in &self.secrets {
            reason = reason.replace(secret.as_str(), REDACTED);
        }
        reason
    }
}

/// Removes the plain credentials from `payload`. `withhold_unparsable`: an identity payload,
/// withheld whole when it is not JSON.
pub fn redact_credentials(payload: &[u8], withhold_unparsable: bool) -> Redaction {
    let unchanged = |secrets| Redaction {
        payload: payload.to_vec(),
        withheld: None,
        secrets,
    };
    let mut value: Value = match serde_json::from_slice(payload) {
        Ok(value) => value,
        Err(_) if withhold_unparsable => {
            return Redaction {
                payload: Vec::new(),
                withheld: Some(
                    "the identity message is not valid JSON and may hold a plain credential; \
                     the original is at source_topic/source_partition/source_offset",
                ),
                secrets: Vec::new(),
            };
        }
        Err(_) => return unchanged(Vec::new()),
    };
    let mut secrets = Vec::new();
    redact_value(&mut value, &mut secrets);
    if secrets.is_empty() {
        return unchanged(secrets);
    }
    // Longest first, so that a value containing another is scrubbed whole.
    secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    secrets.dedup();
    Redaction {
        payload: value.to_string().into_bytes(),
        withheld: None,
        secrets,
    }
}

fn redact_value(value: &mut Value, secrets: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            redact_members(map, secrets);
            map.values_mut()
                .for_each(|member| redact_value(member, secrets));
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| redact_value(item, secrets)),
        _ => {}
    }
}

fn redact_members(map: &mut Map<String, Value>, secrets: &mut Vec<String>) {
    for (plain, hashed, hash) in CREDENTIALS {
        let Some(removed) = map.remove(plain) else {
            continue;
        };
        let text = match &removed {
            Value::String(text) if text.is_empty() => continue,
            Value::String(text) => text.clone(),
            Value::Null => continue,
            other => other.to_string(),
        };
        // As the parser does: a non-empty hash wins over the plain value.
        let hash_given = map
            .get(hashed)
            .is_some_and(|h| !matches!(h, Value::Null) && h.as_str() != Some(""));
        if !hash_given && removed.is_string() {
            map.insert(hashed.to_owned(), Value::String(hash(&text)));
        }
        push_secret(text, secrets);
        // A wrong-typed value (an object, an array) may hold the credential deeper down.
        leaves(&removed, secrets);
    }
}

fn push_secret(text: String, secrets: &mut Vec<String>) {
    if let Some(bare) = text.strip_prefix("sk-").filter(|bare| !bare.is_empty()) {
        secrets.push(bare.to_owned());
    }
    secrets.push(text);
}

fn leaves(value: &Value, secrets: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.values().for_each(|member| leaves(member, secrets)),
        Value::Array(items) => items.iter().for_each(|item| leaves(item, secrets)),
        Value::String(text) if !text.is_empty() => push_secret(text.clone(), secrets),
        Value::Number(number) => push_secret(number.to_string(), secrets),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(payload: &str) -> Value {
        let redaction = redact_credentials(payload.as_bytes(), true);
        serde_json::from_slice(&redaction.payload).expect("JSON")
    }

    #[test]
    fn plain_credentials_become_their_hashes() {
        let user = redacted(r#"{"kind":"user","id":1,"access_token":"t0k"}"#);
        assert_eq!(user["access_token_sha256"], hash_access_token("t0k"));
        assert!(user.get("access_token").is_none());
        let token = redacted(r#"{"kind":"token","key":"sk-abc","key_sha256":""}"#);
        assert_eq!(token["key_sha256"], hash_token_key("abc"));
        let nested = redacted(r#"[{"x":{"key":"sk-abc"}}]"#);
        assert_eq!(nested[0]["x"]["key_sha256"], hash_token_key("abc"));
        // An escaped member name is the same member.
        let escaped = redacted(r#"{"k\u0065y":"sk-abc"}"#);
        assert_eq!(escaped["key_sha256"], hash_token_key("abc"));
    }

    #[test]
    fn a_given_hash_is_kept_and_a_wrong_typed_value_dropped() {
        let both = redacted(r#"{"access_token":"t0k","access_token_sha256":"given"}"#);
        assert_eq!(both["access_token_sha256"], "given");
        let number = redact_credentials(br#"{"key":123456789}"#, true);
        assert_eq!(number.payload, b"{}");
        assert_eq!(
            number.scrub("invalid type: integer `123456789`, expected a string"),
            "invalid type: integer `<redacted>`, expected a string"
        );
    }

    #[test]
    fn nothing_to_redact_keeps_the_original_bytes() {
        let payload = br#"{ "kind" : "user", "id": 1 }"#;
        assert_eq!(redact_credentials(payload, true).payload, payload);
        assert_eq!(redact_credentials(b"not json", false).payload, b"not json");
    }

    #[test]
    fn unparsable_identity_payloads_are_withheld() {
        let redaction = redact_credentials(br#"{"access_token":"t0k","#, true);
        assert!(redaction.payload.is_empty());
        assert!(redaction.withheld.is_some());
        assert_eq!(
            redaction.scrub("EOF while parsing an object at line 1 column 22"),
            "EOF while parsing an object at line 1 column 22"
        );
        assert_eq!(
            redaction.scrub("unknown variant `t0k`"),
            "invalid identity event: not valid JSON"
        );
    }

    #[test]
    fn reasons_lose_both_forms_of_a_key() {
        let redaction = redact_credentials(br#"{"key":"sk-abcdef"}"#, true);
        assert_eq!(
            redaction.scrub("saw sk-abcdef and abcdef"),
            "saw <redacted> and <redacted>"
        );
    }
}
