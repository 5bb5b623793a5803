//! A `gateway.identity` message, any bytes, through the parser ingest runs on it
//! (`parse_identity_message`), and, as ingest does for a refused one, through the dead letter's
//! redaction. Beyond "no panic": no row and no dead letter carries a plain credential
//! (docs/events.md, "Credentials never reach the dead-letter topic"), and a row's hash is what
//! the contract says (64 lowercase hex, or empty when the event had no credential).

#![no_main]

use libfuzzer_sys::fuzz_target;
use logbus_projections::identity::{
    IdentityEvent, IdentityRow, hash_access_token, hash_token_key, parse_identity_event,
    parse_identity_message,
};
use logbus_projections::redact::{REDACTED, redact_credentials};
use logbus_projections::reject::RejectKind;
use serde_json::Value;

/// ingest's `DEFAULT_MAX_EVENT_BYTES`, and a tight limit that inputs of libFuzzer's default
/// length can exceed.
const LIMITS: [usize; 2] = [256 * 1024, 96];

fuzz_target!(|data: &[u8]| {
    for max_event_bytes in LIMITS {
        match parse_identity_message(data, max_event_bytes) {
            Ok(row) => {
                assert!(data.len() <= max_event_bytes);
                check_row(data, &row);
            }
            Err(rejection) => {
                assert!(
                    matches!(
                        rejection.kind,
                        RejectKind::InvalidIdentity | RejectKind::Oversized
                    ),
                    "{rejection:?}"
                );
                check_dead_letter(data, &rejection.reason);
            }
        }
    }
});

/// The hash column is empty or a lowercase SHA-256 hex, never the plain credential, and it is
/// the plain credential's hash when only that was sent.
fn check_row(data: &[u8], row: &IdentityRow) {
    let event = parse_identity_event(data).expect("an accepted message parses");
    let (hash, hashed, plain, hash_plain): (_, _, _, fn(&str) -> String) = match (&event, row) {
        (IdentityEvent::User(user), IdentityRow::User(row)) => (
            &row.access_token_sha256,
            user.access_token_sha256.as_deref(),
            user.access_token.as_ref().map(|s| s.expose()),
            hash_access_token,
        ),
        (IdentityEvent::Token(token), IdentityRow::Token(row)) => (
            &row.key_sha256,
            token.key_sha256.as_deref(),
            token.key.as_ref().map(|s| s.expose()),
            hash_token_key,
        ),
        _ => panic!("the row is of the event's kind: {row:?}"),
    };
    assert!(
        hash.is_empty()
            || (hash.len() == 64
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))),
        "{hash:?} is not a lowercase SHA-256 hex"
    );
    if let Some(plain) = plain.filter(|p| !p.is_empty()) {
        assert_ne!(hash, plain, "a plain credential reached the row");
        if hashed.is_none_or(str::is_empty) {
            assert_eq!(*hash, hash_plain(plain));
        }
    }
    let direct = match event {
        IdentityEvent::User(user) => user.into_row().map(IdentityRow::User),
        IdentityEvent::Token(token) => token.into_row().map(IdentityRow::Token),
    };
    assert_eq!(direct.as_ref(), Ok(row));
}

/// What ingest sends for a refused identity message: the redacted payload (or none) and the
/// scrubbed reason. Neither may hold a plain `access_token` or `key` member's value.
fn check_dead_letter(data: &[u8], reason: &str) {
    let redaction = redact_credentials(data, true);
    let Ok(original) = serde_json::from_slice::<Value>(data) else {
        assert!(redaction.withheld.is_some() && redaction.payload.is_empty());
        return;
    };
    let mut secrets = Vec::new();
    plain_credentials(&original, &mut secrets);
    let letter: Value = serde_json::from_slice(&redaction.payload).expect("a letter is JSON");
    let mut left = Vec::new();
    plain_credentials(&letter, &mut left);
    assert!(left.is_empty(), "credentials left in the letter: {left:?}");
    let scrubbed = redaction.scrub(reason);
    // Only secrets that the scrubbed text cannot rebuild from the marker's own letters: a
    // token-like value (alphanumeric, 8 or more) can appear in it only if it was not removed.
    for secret in secrets.iter().filter(|s| {
        s.len() >= 8 && s.bytes().all(|b| b.is_ascii_alphanumeric()) && !REDACTED.contains(*s)
    }) {
        assert!(
            !scrubbed.contains(secret.as_str()),
            "the reason quotes a credential: {scrubbed:?}"
        );
    }
}

/// The values of every non-empty `access_token` / `key` member, at any depth, as redaction
/// reads them (a non-string value by its JSON text).
fn plain_credentials(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (name, member) in map {
                if name == "access_token" || name == "key" {
                    match member {
                        Value::Null => {}
                        Value::String(text) if text.is_empty() => {}
                        Value::String(text) => found.push(text.clone()),
                        other => found.push(other.to_string()),
                    }
                }
                plain_credentials(member, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| plain_credentials(item, found)),
        _ => {}
    }
}
