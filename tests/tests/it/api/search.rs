//! Acceptance tests of search (`/api/log/search`, `/api/log/self/search`) and of the public
//! token endpoint (`/api/log/token`) with its CORS.

use crate::support::api::*;
use serde_json::Value;

const BASE: i64 = 1_700_100_000;

fn contents(data: &Value) -> Vec<String> {
    data.as_array()
        .expect("data is a plain array")
        .iter()
        .map(|i| i["content"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_type_and_content() {
    let api = Api::start().await;
    let specs: [(&str, u8, Caller); 6] = [
        ("Hello World 你好世界", 2, ALICE),
        ("error: upstream returned 500", 5, BOB),
        ("100% done", 2, ALICE),
        ("under_score here", 2, ALICE),
        ("UNDERxSCORE", 2, ALICE),
        ("plain", 4, ADMIN),
    ];
    let mut events: Vec<_> = specs
        .iter()
        .enumerate()
        .map(|(i, (content, log_type, who))| {
            let mut e = log(BASE + i as i64, *who);
            e.content = Some((*content).into());
            e.log_type = i64::from(*log_type);
            e
        })
        .collect();
    for i in 0..105 {
        let mut e = log(BASE - 1000 + i, BOB);
        e.content = Some("bulk row".into());
        e.log_type = 3;
        events.push(e);
    }
    api.seed(&events, &identities()).await;

    let search = |keyword: &'static str| {
        let api = &api;
        async move {
            api.data(&format!("/api/log/search?keyword={keyword}"), ADMIN)
                .await
        }
    };
    assert_eq!(contents(&search("hello").await), ["Hello World 你好世界"]);
    assert_eq!(
        contents(&search("HeLLo%20WORLD").await),
        ["Hello World 你好世界"]
    );
    assert_eq!(
        contents(&search("%E4%BD%A0%E5%A5%BD").await),
        ["Hello World 你好世界"]
    );
    assert_eq!(
        contents(&search("5").await),
        ["error: upstream returned 500"]
    );
    assert_eq!(
        contents(&search("2").await),
        [
            "UNDERxSCORE",
            "under_score here",
            "100% done",
            "Hello World 你好世界"
        ],
        "numeric keyword matches the type, newest first"
    );
    assert_eq!(contents(&search("4").await), ["plain"]);
    assert_eq!(
        contents(&search("%25").await),
        ["100% done"],
        "% is literal"
    );
    assert_eq!(
        contents(&search("_").await),
        ["under_score here"],
        "_ is literal"
    );
    assert_eq!(contents(&search("under_score").await), ["under_score here"]);
    assert!(contents(&search("nomatch").await).is_empty());
    let all = search("bulk").await;
    let items = all.as_array().unwrap();
    assert_eq!(items.len(), 100, "at most 100");
    assert_eq!(items[0]["created_at"], BASE - 1000 + 104, "newest first");
    assert_eq!(items[99]["created_at"], BASE - 1000 + 5);
    assert_eq!(items[0]["id"], 1);
    assert_eq!(items[99]["id"], 100);
    let admin_view = &search("hello").await[0];
    assert_eq!(admin_view["ip"], "203.0.113.7");
    assert_eq!(admin_view["channel_name"], "openai-main");
    assert_eq!(search("").await.as_array().unwrap().len(), 100);

    // Self: only the caller's logs, user view.
    let mine = api.data("/api/log/self/search?keyword=error", ALICE).await;
    assert!(contents(&mine).is_empty(), "Alice never sees Bob's logs");
    let bobs = api.data("/api/log/self/search?keyword=ERROR", BOB).await;
    assert_eq!(contents(&bobs), ["error: upstream returned 500"]);
    assert!(bobs[0].get("ip").is_none());
    assert_eq!(bobs[0]["channel_name"], "");
    let mine = api.data("/api/log/self/search/?keyword=2", ALICE).await;
    assert_eq!(contents(&mine).len(), 4);
    let (status, body) = api.get("/api/log/search?keyword=x", Some(BOB)).await;
    assert_eq!(status, 403, "{body}");

    api.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_logs_and_cors() {
    let api = Api::start().await;
    let mut events = Vec::new();
    for i in 0..3 {
        events.push(log(BASE + i, ALICE));
    }
    let mut other_token = log(BASE + 10, ALICE);
    other_token.token_id = Some(22);
    events.push(other_token);
    events.push(log(BASE + 20, BOB));
    // An enabled token of the banned user: new-api refuses it because of its owner.
    let banned_owners_key = "sk-malloryskey000000000000000000041";
    let mut identities = identities();
    identities.push(token(41, BANNED.id, "mallory-token", banned_owners_key, 1));
    events.push(log(BASE + 30, BANNED));
    api.seed(&events, &identities).await;

    let bare = ALICE_KEY.strip_prefix("sk-").unwrap();
    for path in [
        format!("/api/log/token?key={ALICE_KEY}"),
        format!("/api/log/token?key={bare}"),
        format!("/api/log/token/?key={ALICE_KEY}"),
    ] {
        let (status, body) = api.get(&path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        let items = body["data"].as_array().expect("plain array");
        assert_eq!(items.len(), 3, "{path}");
        assert_eq!(items[0]["created_at"], BASE + 2, "newest first");
        for item in items {
            assert_eq!(item["token_id"], ALICE_TOKEN_ID);
            assert!(item.get("ip").is_none(), "user view: {item}");
            assert_eq!(item["channel_name"], "");
        }
    }
    let (status, headers, body) = api
        .call(
            reqwest::Method::GET,
            "/api/log/token",
            &[("Authorization", &format!("Bearer {ALICE_KEY}"))],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers["cache-control"], "no-store",
        "logs are never cached"
    );
    assert_eq!(body["data"].as_array().unwrap().len(), 3);

    for path in [
        "/api/log/token?key=sk-unknown".to_owned(),
        format!("/api/log/token?key={DISABLED_KEY}"),
        "/api/log/token".to_owned(),
        "/api/log/token?key=%27%20OR%201%3D1".to_owned(),
    ] {
        let (status, body) = api.get(&path, None).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(
            body,
            serde_json::json!({"success": false, "message": "Token不存在或无权限"}),
            "{path}"
        );
    }

    let (status, body) = api
        .get(&format!("/api/log/token?key={banned_owners_key}"), None)
        .await;
    assert_eq!(
        (status, body),
        (
            403,
            serde_json::json!({"success": false, "message": "用户已被封禁"})
        ),
        "a banned owner's token lists nothing"
    );

    // At most 1000 logs, newest first.
    let bulk: Vec<_> = (0..1000).map(|i| log(BASE - 5000 + i, ALICE)).collect();
    api.seed(&bulk, &[]).await;
    let (status, body) = api
        .get(&format!("/api/log/token?key={ALICE_KEY}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let items = body["data"].as_array().unwrap();
    assert_eq!(items.len(), 1000);
    assert_eq!(items[0]["created_at"], BASE + 2);
    assert_eq!(items[999]["created_at"], BASE - 5000 + 3);

    // CORS: any origin and preflight on the token endpoint only.
    for path in ["/api/log/token", "/api/log/token/"] {
        let preflight = api
            .http
            .request(reqwest::Method::OPTIONS, format!("{}{path}", api.base))
            .header("Origin", "https://third-party.example")
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
            .await
            .unwrap();
        assert!(
            preflight.status().is_success(),
            "{path}: {}",
            preflight.status()
        );
        let headers = preflight.headers();
        assert_eq!(headers["access-control-allow-origin"], "*", "{path}");
        assert!(
            headers["access-control-allow-methods"]
                .to_str()
                .unwrap()
                .contains("GET")
        );
    }
    let (_, headers, _) = api
        .call(
            reqwest::Method::GET,
            &format!("/api/log/token?key={ALICE_KEY}"),
            &[("Origin", "https://third-party.example")],
        )
        .await;
    assert_eq!(headers["access-control-allow-origin"], "*");
    let (status, headers, _) = api
        .call(
            reqwest::Method::GET,
            "/api/log/self",
            &[
                ("Origin", "https://third-party.example"),
                ("Authorization", ALICE.token),
                ("New-Api-User", "2"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    assert!(headers.get("access-control-allow-origin").is_none());
    for path in ["/api/log/", "/api/log/self", "/api/log/stat"] {
        let (status, headers, _) = api
            .call(
                reqwest::Method::OPTIONS,
                path,
                &[
                    ("Origin", "https://third-party.example"),
                    ("Access-Control-Request-Method", "GET"),
                ],
            )
            .await;
        assert_eq!(status, 405, "{path}");
        assert!(
            headers.get("access-control-allow-origin").is_none(),
            "no CORS on {path}"
        );
    }

    api.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_logs_are_streamed_in_the_envelope() {
    let api = Api::start().await;
    // Large rows: the endpoint answers up to 1000 of them, so it streams the list instead of
    // collecting it (no Content-Length: the body is sent in chunks as rows arrive).
    const ROWS: i64 = 15;
    let events: Vec<_> = (0..ROWS)
        .map(|i| {
            let mut event = log(BASE + i, ALICE);
            event.content = Some(format!("{i:03}-{}", "x".repeat(200 * 1024)));
            event
        })
        .collect();
    api.seed(&events, &identities()).await;
    let response = api
        .http
        .get(format!("{}/api/log/token?key={ALICE_KEY}", api.base))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("content-length").is_none(),
        "streamed, not buffered: {:?}",
        response.headers()
    );
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.expect("one JSON document");
    assert_eq!(body["success"], true);
    assert_eq!(body["message"], "");
    let items = body["data"].as_array().expect("a plain array");
    assert_eq!(items.len(), ROWS as usize);
    for (n, item) in items.iter().enumerate() {
        let i = ROWS - 1 - n as i64;
        assert_eq!(item["id"], n as u64 + 1, "ids count the list from 1");
        assert_eq!(item["created_at"], BASE + i, "newest first");
        let content = item["content"].as_str().expect("content");
        assert!(content.starts_with(&format!("{i:03}-")) && content.len() == 4 + 200 * 1024);
        assert!(item.get("ip").is_none(), "user view");
    }
    api.finish().await;
}
