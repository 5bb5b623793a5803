//! What failed authentication costs: identity lookups by hash read an index, not the table;
//! unknown credentials are not cached (a user published just after a failed attempt is let in
//! at once, and random credentials evict nobody); a client that keeps failing is answered 429
//! in the envelope, per client address.

use std::time::Duration;

use logbus_projections::identity::{hash_access_token, hash_token_key};
use logbus_query_api::store::Store;
use reqwest::Method;

use crate::support::TestDatabase;
use crate::support::api::{ALICE, ALICE_KEY, Api, Caller, identities, user};

const CAROL: Caller = Caller {
    id: 5,
    token: "carol-access-token",
};

/// GET `path` as `caller` from the client address `client` (the test API trusts
/// `X-Forwarded-For`).
async fn get_from(
    api: &Api,
    client: &str,
    path: &str,
    caller: Caller,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let id = caller.id.to_string();
    let headers = [
        ("X-Forwarded-For", client),
        ("Authorization", caller.token),
        ("New-Api-User", id.as_str()),
    ];
    api.call(Method::GET, path, &headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_are_throttled_per_client_address() {
    let api = Api::start_with(|config| {
        config.throttle.auth_failures_per_minute = 4;
        config.throttle.client_address_header = Some("x-forwarded-for".parse().expect("name"));
    })
    .await;
    api.seed(&[], &identities()).await;
    let (guesser, neighbour) = ("192.0.2.10", "192.0.2.11");
    let guess = Caller {
        id: ALICE.id,
        token: "not-a-token",
    };
    let impostor = Caller {
        id: 3,
        token: ALICE.token,
    };

    // Succeeding never counts, however often.
    for _ in 0..10 {
        let (status, _, body) = get_from(&api, guesser, "/api/log/self", ALICE).await;
        assert_eq!(status, 200, "{body}");
    }
    // Four failures of three kinds are answered as such...
    for caller in [guess, impostor, guess] {
        let (status, _, body) = get_from(&api, guesser, "/api/log/self", caller).await;
        assert_eq!(status, 401, "{body}");
    }
    let headers = [("X-Forwarded-For", guesser)];
    let (status, _, body) = api
        .call(Method::GET, "/api/log/token?key=sk-guessed", &headers)
        .await;
    assert_eq!(status, 401, "an unknown key counts too: {body}");

    // ...the fifth is over the budget, and then the client is refused before any lookup,
    // even with a valid credential, until its budget refills.
    let (status, headers, body) = get_from(&api, guesser, "/api/log/self", guess).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    let retry_after: u64 = headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("whole seconds");
    assert!(
        (1..=15).contains(&retry_after),
        "4 per minute: {retry_after}"
    );
    let (status, _, body) = get_from(&api, guesser, "/api/log/self", ALICE).await;
    assert_eq!(status, 429, "{body}");
    let (status, _, body) = api
        .call(
            Method::GET,
            &format!("/api/log/token?key={ALICE_KEY}"),
            &[("X-Forwarded-For", guesser)],
        )
        .await;
    assert_eq!(status, 429, "the token endpoint shares the budget: {body}");
    // Each 429 of the throttle is counted (three above; other tests may add theirs).
    let text = api
        .http
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .expect("scraped")
        .text()
        .await
        .expect("metrics");
    let throttled: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("logbus_api_auth_throttled_total "))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0);
    assert!(throttled >= 3.0, "{text}");

    // Other clients are not affected.
    let (status, _, body) = get_from(&api, neighbour, "/api/log/self", ALICE).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = get_from(&api, neighbour, "/api/log/self", guess).await;
    assert_eq!(status, 401, "{body}");
    api.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_published_after_a_failed_attempt_is_let_in_at_once() {
    // A long TTL: before unknown credentials stopped being cached, Carol stayed locked out
    // for all of it.
    let api = Api::start_with_ttl_ms(600_000).await;
    api.seed(&[], &identities()).await;
    let (status, body) = api.get("/api/log/self", Some(CAROL)).await;
    assert_eq!(status, 401, "Carol is not known yet: {body}");
    api.seed(&[], &[user(CAROL, "carol", 1, 1, 1)]).await;
    let (status, body) = api.get("/api/log/self", Some(CAROL)).await;
    assert_eq!(status, 200, "Carol is let in once she is stored: {body}");
    api.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_lookups_read_the_hash_index_not_the_table() {
    const IDENTITIES: u64 = 200_000;
    let db = TestDatabase::migrated().await;
    // Through the tables' materialized views, as ingest's inserts go.
    db.client
        .query(&format!(
            "INSERT INTO users (id, username, role, status, `group`, access_token_sha256, version)
             SELECT number, concat('user-', toString(number)), 1, 1, 'default',
                    lower(hex(SHA256(concat('token-', toString(number))))), 1
             FROM numbers({IDENTITIES})"
        ))
        .execute()
        .await
        .expect("users inserted");
    db.client
        .query(&format!(
            "INSERT INTO tokens (id, user_id, name, key_sha256, status, version)
             SELECT number, number, 'key', lower(hex(SHA256(concat('key-', toString(number))))),
                    1, 1
             FROM numbers({IDENTITIES})"
        ))
        .execute()
        .await
        .expect("tokens inserted");
    // A scan of either table's hash column reads all 200k rows; the index, a granule or two.
    let client = db.client.clone().with_setting("max_rows_to_read", "50000");
    let store = Store::new(client, Duration::from_secs(20));

    let user = store
        .user_by_access_token(&hash_access_token("token-123456"))
        .await
        .expect("the user lookup stays within 50k rows read");
    assert_eq!(user.map(|u| u.id), Some(123_456));
    let nobody = store
        .user_by_access_token(&hash_access_token("no such token"))
        .await
        .expect("an unknown credential costs as little");
    assert!(nobody.is_none());
    let token = store
        .token_by_key(&hash_token_key("key-7"))
        .await
        .expect("the token lookup stays within 50k rows read");
    assert_eq!(token.map(|t| (t.id, t.user_id)), Some((7, 7)));

    // A rotated credential: the old hash stays in the index, but only the latest version
    // counts.
    db.client
        .query(
            "INSERT INTO users (id, username, role, status, `group`, access_token_sha256, version)
             VALUES (123456, 'user-123456', 1, 1, 'default', lower(hex(SHA256('rotated'))), 2)",
        )
        .execute()
        .await
        .expect("rotation inserted");
    let old = store
        .user_by_access_token(&hash_access_token("token-123456"))
        .await
        .expect("lookup");
    assert!(
        old.is_none(),
        "the rotated-out token no longer authenticates"
    );
    let new = store
        .user_by_access_token(&hash_access_token("rotated"))
        .await
        .expect("lookup");
    assert_eq!(new.map(|u| (u.id, u.version)), Some((123_456, 2)));
    db.drop_database().await;
}
