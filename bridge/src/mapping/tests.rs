use logbus_projections::events::{EventSource, parse_event};
use logbus_projections::identity::{IdentityRow, parse_identity_message};

use super::*;

const SOURCE: EventSource<'static> = EventSource {
    topic: "t",
    partition: 0,
    offset: 0,
    index: 0,
};

fn row() -> LogSourceRow {
    LogSourceRow {
        id: 41,
        user_id: 7,
        created_at: 1_764_201_600,
        log_type: 2,
        content: "模型倍率 2.50".into(),
        username: "alice".into(),
        token_name: "ci".into(),
        model_name: "gpt-4o".into(),
        quota: 1530,
        prompt_tokens: 812,
        completion_tokens: 96,
        use_time: 3,
        is_stream: 1,
        channel_id: 5,
        token_id: 9,
        log_group: "vip".into(),
        ip: "203.0.113.9".into(),
        other: r#"{"model_ratio":2.5,"admin_info":{"use_channel":["5"]}}"#.into(),
        request_id: "req-1".into(),
        upstream_request_id: "up-1".into(),
    }
}

fn published(row: &LogSourceRow) -> Vec<u8> {
    serde_json::to_vec(&row.event(&namespace_uuid("test"), "openai")).expect("serializes")
}

#[test]
fn every_column_reaches_the_stored_row() {
    let row = row();
    let stored = parse_event(&published(&row), SOURCE, 1 << 20).expect("valid event");
    assert_eq!(stored.event_id, log_event_id(&namespace_uuid("test"), 41));
    assert_eq!(stored.created_at, 1_764_201_600);
    assert_eq!(stored.log_type, 2);
    assert_eq!(stored.user_id, 7);
    assert_eq!(stored.username, "alice");
    assert_eq!(stored.token_id, 9);
    assert_eq!(stored.token_name, "ci");
    assert_eq!(stored.model_name, "gpt-4o");
    assert_eq!(stored.quota, 1530);
    assert_eq!(stored.prompt_tokens, 812);
    assert_eq!(stored.completion_tokens, 96);
    assert_eq!(stored.use_time, 3);
    assert!(stored.is_stream);
    assert_eq!(stored.channel_id, 5);
    assert_eq!(stored.channel_name, "openai");
    assert_eq!(stored.group, "vip");
    assert_eq!(stored.ip, "203.0.113.9");
    assert_eq!(stored.request_id, "req-1");
    assert_eq!(stored.upstream_request_id, "up-1");
    assert_eq!(stored.content, "模型倍率 2.50");
    // `other` is kept as new-api's text, byte for byte.
    assert_eq!(stored.other, row.other);
    assert_eq!(row.key(), "7");
}

#[test]
fn empty_optional_columns_are_empty_in_the_row() {
    let row = LogSourceRow {
        id: 1,
        created_at: 1,
        log_type: 1,
        ..LogSourceRow::default()
    };
    let stored = parse_event(&published(&row), SOURCE, 1 << 20).expect("valid event");
    assert_eq!(stored.other, "");
    assert_eq!(stored.request_id, "");
    assert!(!stored.is_stream);
}

#[test]
fn rows_the_contract_refuses_are_still_published_unchanged() {
    for (change, reason) in [
        (
            (|r: &mut LogSourceRow| r.log_type = 0) as fn(&mut LogSourceRow),
            "type 0",
        ),
        (|r| r.use_time = i64::from(i32::MAX) + 1, "expected i32"),
        (|r| r.other = "not json".into(), "other"),
        (|r| r.created_at = 0, "created_at"),
    ] {
        let mut bad = row();
        change(&mut bad);
        let payload = published(&bad);
        let json: serde_json::Value = serde_json::from_slice(&payload).expect("JSON");
        assert_eq!(
            json["user_id"], 7,
            "{reason}: published with its key fields"
        );
        let rejected = parse_event(&payload, SOURCE, 1 << 20).expect_err(reason);
        assert!(rejected.reason.contains(reason), "{}", rejected.reason);
    }
}

#[test]
fn event_ids_are_stable_per_namespace_and_row() {
    let ns = namespace_uuid("new-api-prod");
    assert_eq!(log_event_id(&ns, 1), log_event_id(&ns, 1));
    assert_ne!(log_event_id(&ns, 1), log_event_id(&ns, 2));
    assert_ne!(
        log_event_id(&ns, 1),
        log_event_id(&namespace_uuid("new-api-eu"), 1)
    );
    let explicit = "0b8f3c2e-5d1a-4c7e-9a53-2f1d7c9e4b10";
    assert_eq!(namespace_uuid(explicit).to_string(), explicit);
}

fn user(status: i64, deleted: i64) -> UserSourceRow {
    UserSourceRow {
        id: 3,
        username: "bob".into(),
        role: 10,
        status,
        user_group: "default".into(),
        access_token: Secret::new("AbC+/xyz0123456789abcdefghij=="),
        deleted,
    }
}

#[test]
fn users_become_identities_with_hashed_tokens() {
    let event = user(1, 0).identity(5);
    let json = serde_json::to_string(&event).expect("serializes");
    assert!(
        !json.contains("AbC+"),
        "the plain token never leaves: {json}"
    );
    assert!(!format!("{:?}", user(1, 0)).contains("AbC+"));
    let Ok(IdentityRow::User(stored)) = parse_identity_message(json.as_bytes(), 4096) else {
        panic!("valid user event: {json}")
    };
    assert_eq!(
        stored.access_token_sha256,
        hash_access_token("AbC+/xyz0123456789abcdefghij==")
    );
    assert_eq!((stored.id, stored.role, stored.status), (3, 10, 1));
    assert_eq!((stored.version, stored.group.as_str()), (5, "default"));
    for (status, deleted) in [(2, 0), (1, 1), (0, 0)] {
        let IdentityEvent::User(u) = user(status, deleted).identity(1) else {
            panic!("user")
        };
        assert_eq!(
            u.status, STATUS_DISABLED,
            "status {status} deleted {deleted}"
        );
    }
    let mut no_token = user(1, 0);
    no_token.access_token = Secret::new("");
    let IdentityEvent::User(u) = no_token.identity(1) else {
        panic!("user")
    };
    assert_eq!(u.access_token_sha256, None);
}

fn token() -> TokenSourceRow {
    TokenSourceRow {
        id: 12,
        user_id: 3,
        name: "ci".into(),
        token_key: Secret::new("Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6hIj9kLm2n"),
        status: 1,
        expired_time: -1,
        remain_quota: 0,
        unlimited_quota: 1,
        deleted: 0,
    }
}

#[test]
fn tokens_are_enabled_only_while_new_api_would_accept_them() {
    let now = 1_800_000_000;
    assert!(token().enabled(now));
    type Change = fn(&mut TokenSourceRow);
    let cases: [(Change, bool); 7] = [
        (|t| t.status = 2, false),
        (|t| t.status = 3, false),
        (|t| t.deleted = 1, false),
        (|t| t.expired_time = 1_700_000_000, false),
        (|t| t.expired_time = 1_900_000_000, true),
        (|t| t.unlimited_quota = 0, false),
        (
            |t| {
                t.unlimited_quota = 0;
                t.remain_quota = 1;
            },
            true,
        ),
    ];
    for (change, enabled) in cases {
        let mut t = token();
        change(&mut t);
        assert_eq!(t.enabled(now), enabled, "{t:?}");
    }
    let json = serde_json::to_string(&token().identity(now, 2)).expect("serializes");
    assert!(!json.contains("Ab3dEf6h"), "{json}");
    let Ok(IdentityRow::Token(stored)) = parse_identity_message(json.as_bytes(), 4096) else {
        panic!("valid token event: {json}")
    };
    // The key as clients send it, `sk-` prefixed, finds the token.
    assert_eq!(
        stored.key_sha256,
        hash_token_key("sk-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb3dEf6hIj9kLm2n")
    );
    assert_eq!((stored.status, stored.user_id, stored.version), (1, 3, 2));
    let mut expired = token();
    expired.expired_time = now - 1;
    let IdentityEvent::Token(t) = expired.identity(now, 3) else {
        panic!("token")
    };
    assert_eq!(t.status, STATUS_DISABLED);
}

#[test]
fn versions_and_disabling_keep_the_rest() {
    let event = user(1, 0).identity(1);
    assert_eq!(identity_key(&event), "user:3");
    let newer = with_version(&event, 9);
    let IdentityEvent::User(u) = disabled(&newer) else {
        panic!("user")
    };
    assert_eq!((u.version, u.status, u.username.as_str()), (9, 2, "bob"));
    assert_eq!(identity_key(&token().identity(0, 1)), "token:12");
}
