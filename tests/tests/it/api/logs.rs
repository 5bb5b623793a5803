//! Acceptance tests of the list endpoints (`/api/log/`, `/api/log/self`): every filter,
//! pagination edges, the user view, the auth matrix, bad input and the OpenAPI document.

use std::time::Duration;

use crate::support::api::*;
use crate::support::eventually;
use serde_json::Value;

const BASE: i64 = 1_700_000_000;

fn event_ids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .expect("array")
        .iter()
        .map(|item| item["event_id"].as_str().expect("event_id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_pagination_and_views() {
    let api = Api::start().await;
    let mut a1 = log(BASE, ALICE);
    a1.content = Some("first".into());
    let mut a2 = log(BASE + 10, ALICE);
    a2.model_name = Some("my_model".into());
    a2.channel_id = Some(2);
    a2.group = Some("vip".into());
    let mut a3 = log(BASE + 20, ALICE);
    a3.model_name = Some("myxmodel".into());
    a3.log_type = 5;
    let mut b1 = log(BASE + 20, BOB);
    b1.model_name = Some("claude-3".into());
    b1.channel_id = Some(3);
    let mut b2 = log(BASE + 30, BOB);
    b2.log_type = 1;
    b2.model_name = None;
    let mut r1 = log(BASE + 40, ADMIN);
    r1.request_id = Some("req-special".into());
    let t1 = log(BASE + 50, ALICE);
    let t2 = log(BASE + 50, ALICE);
    let events = vec![a1, a2, a3, b1, b2, r1, t1, t2];
    api.seed(&events, &identities()).await;

    // Everything, newest first, ties by event_id descending (ClickHouse's UUID order).
    let page = api.data("/api/log/", ADMIN).await;
    assert_eq!(page["total"], 8);
    assert_eq!(page["page"], 1);
    assert_eq!(page["page_size"], 20);
    let expected: Vec<String> = api
        .db
        .client
        .query("SELECT toString(event_id) FROM logs ORDER BY created_at DESC, event_id DESC")
        .fetch_all::<String>()
        .await
        .expect("order query");
    assert_eq!(event_ids(&page["items"]), expected);
    let first = &page["items"][0];
    assert_eq!(first["id"], 1);
    assert_eq!(page["items"][7]["id"], 8);
    // The admin view has every field.
    let a1_item = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["content"] == "first")
        .expect("a1 listed")
        .clone();
    for (key, value) in [
        ("user_id", Value::from(2)),
        ("created_at", Value::from(BASE)),
        ("type", Value::from(2)),
        ("username", Value::from("alice")),
        ("token_name", Value::from("alice-token")),
        ("token_id", Value::from(ALICE_TOKEN_ID)),
        ("model_name", Value::from("gpt-4o")),
        ("quota", Value::from(100)),
        ("prompt_tokens", Value::from(10)),
        ("completion_tokens", Value::from(20)),
        ("use_time", Value::from(1)),
        ("is_stream", Value::from(false)),
        ("channel", Value::from(1)),
        ("channel_name", Value::from("openai-main")),
        ("group", Value::from("default")),
        ("ip", Value::from("203.0.113.7")),
        (
            "event_id",
            Value::from(events[0].event_id.unwrap().to_string()),
        ),
        (
            "request_id",
            Value::from(events[0].request_id.clone().unwrap()),
        ),
    ] {
        assert_eq!(a1_item[key], value, "field {key}: {a1_item}");
    }
    let other: Value = serde_json::from_str(a1_item["other"].as_str().unwrap()).unwrap();
    assert_eq!(other["admin_info"]["x"], 1, "admins see admin_info");

    // Each filter, alone and combined.
    let total = |query: &'static str| {
        let api = &api;
        async move {
            let data = api.data(&format!("/api/log/?{query}"), ADMIN).await;
            assert_eq!(
                data["items"].as_array().unwrap().len() as u64,
                data["total"].as_u64().unwrap().min(20),
                "{query}"
            );
            data["total"].as_u64().unwrap()
        }
    };
    assert_eq!(total("type=0").await, 8);
    assert_eq!(total("type=2").await, 6);
    assert_eq!(total("type=5").await, 1);
    assert_eq!(total("type=1").await, 1);
    assert_eq!(total("type=7").await, 0);
    assert_eq!(
        total("start_timestamp=1700000010&end_timestamp=1700000020").await,
        3,
        "both bounds inclusive"
    );
    assert_eq!(total("start_timestamp=1700000040").await, 3);
    assert_eq!(total("end_timestamp=1700000000").await, 1);
    assert_eq!(total("start_timestamp=0&end_timestamp=0").await, 8);
    assert_eq!(total("username=alice").await, 5);
    assert_eq!(total("username=ali%25").await, 5);
    assert_eq!(total("username=%25lic%25").await, 5);
    assert_eq!(total("username=%25ob").await, 2);
    assert_eq!(total("username=ali").await, 0, "exact without %");
    assert_eq!(total("token_name=bob-token").await, 2);
    assert_eq!(total("model_name=my_model").await, 1);
    assert_eq!(total("model_name=%25y_m%25").await, 1, "_ is literal");
    assert_eq!(total("model_name=my%25").await, 2);
    assert_eq!(total("model_name=gpt%25").await, 4);
    assert_eq!(total("channel=2").await, 1);
    assert_eq!(total("channel=3").await, 1);
    assert_eq!(total("channel=0").await, 8);
    assert_eq!(total("group=vip").await, 1);
    assert_eq!(total("request_id=req-special").await, 1);
    assert_eq!(total("username=alice&type=2").await, 4);
    assert_eq!(total("username=alice&type=2&channel=2&group=vip").await, 1);
    assert_eq!(
        total("unknown_param=1&type=2").await,
        6,
        "unknown parameters ignored"
    );

    // Invalid patterns are refused with a clear message.
    for (query, needle) in [
        ("model_name=ab%25%25", "%%"),
        ("username=%25a%25b%25c", "2"),
        ("model_name=a%25", "2"),
        ("username=%25", "2"),
    ] {
        let (status, body) = api.get(&format!("/api/log/?{query}"), Some(ADMIN)).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["success"], false);
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(needle), "{query}: {message}");
    }

    // Pagination edges.
    let page = api.data("/api/log/?page_size=3&p=1", ADMIN).await;
    assert_eq!(
        (page["page"].clone(), page["page_size"].clone()),
        (1.into(), 3.into())
    );
    assert_eq!(event_ids(&page["items"]), expected[..3]);
    let page = api.data("/api/log/?page_size=3&p=3", ADMIN).await;
    assert_eq!(event_ids(&page["items"]), expected[6..]);
    assert_eq!(page["items"][0]["id"], 7);
    assert_eq!(page["items"][1]["id"], 8);
    assert_eq!(page["total"], 8);
    for (query, page_no, page_size, items) in [
        ("p=0", 1, 20, 8),
        ("p=-1", 1, 20, 8),
        ("p=abc", 1, 20, 8),
        // Pages up to the window of 10,000 rows; beyond it is a 400 (api::cursor).
        ("p=500", 500, 20, 0),
        ("p=99999999999999999999999", 1, 20, 8),
        ("page_size=-1", 1, 20, 8),
        ("page_size=0", 1, 20, 8),
        ("page_size=1000", 1, 100, 8),
        ("page_size=abc", 1, 20, 8),
        ("page_size=1", 1, 1, 1),
        ("page_size=1&p=8", 8, 1, 1),
        ("page_size=1&p=9", 9, 1, 0),
    ] {
        let data = api.data(&format!("/api/log/?{query}"), ADMIN).await;
        assert_eq!(data["page"], page_no, "{query}");
        assert_eq!(data["page_size"], page_size, "{query}");
        assert_eq!(data["items"].as_array().unwrap().len(), items, "{query}");
        assert_eq!(data["total"], 8, "{query}");
    }

    // Trailing slash or not.
    assert_eq!(api.data("/api/log", ADMIN).await["total"], 8);
    assert_eq!(api.data("/api/log/self/", ALICE).await["total"], 5);

    // The user view: only the caller's logs, no channel name, no IP, no admin-only details.
    let mine = api.data("/api/log/self", ALICE).await;
    assert_eq!(mine["total"], 5);
    for item in mine["items"].as_array().unwrap() {
        assert_eq!(item["user_id"], ALICE.id, "{item}");
        assert_eq!(item["channel_name"], "", "{item}");
        assert!(item.get("ip").is_none(), "{item}");
        let other: Value = serde_json::from_str(item["other"].as_str().unwrap()).unwrap();
        assert!(other.get("admin_info").is_none(), "{item}");
        assert_eq!(other["model_ratio"], 2.5);
        assert!(item["event_id"].is_string());
    }
    let bobs = api.data("/api/log/self?username=alice", BOB).await;
    assert_eq!(
        bobs["total"], 2,
        "username is ignored on self: Bob never sees Alice's logs"
    );
    assert!(
        bobs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["user_id"] == BOB.id)
    );
    let filtered = api
        .data("/api/log/self?type=2&model_name=%25model", ALICE)
        .await;
    assert_eq!(filtered["total"], 1);
    let paged = api.data("/api/log/self?page_size=2&p=2", ALICE).await;
    assert_eq!(paged["items"][0]["id"], 3);

    api.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_matrix() {
    let api = Api::start().await;
    api.seed(&[log(BASE, ALICE), log(BASE + 1, BOB)], &identities())
        .await;
    let get = |path: &'static str, headers: Vec<(&'static str, String)>| {
        let api = &api;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, _, body) = api.call(reqwest::Method::GET, path, &headers).await;
            assert_eq!(body["success"], false, "{path}: {body}");
            (status, body["message"].as_str().unwrap().to_owned())
        }
    };
    let h = |token: &str, user: &str| {
        vec![
            ("Authorization", token.to_owned()),
            ("New-Api-User", user.to_owned()),
        ]
    };

    assert_eq!(
        get("/api/log/self", vec![]).await,
        (401, "无权进行此操作，未登录且未提供 access token".into())
    );
    assert_eq!(
        get("/api/log/self", h("wrong-token", "2")).await,
        (401, "无权进行此操作，access token 无效".into())
    );
    assert_eq!(
        get("/api/log/self", h(ALICE.token, "3")).await,
        (
            401,
            "无权进行此操作，New-Api-User 与 access token 不匹配".into()
        )
    );
    let (status, _) = get(
        "/api/log/self",
        vec![("Authorization", ALICE.token.to_owned())],
    )
    .await;
    assert_eq!(status, 401, "New-Api-User is required");
    let (status, _) = get("/api/log/self", h(ALICE.token, "alice")).await;
    assert_eq!(status, 401, "New-Api-User must be a number");
    assert_eq!(
        get("/api/log/self", h(BANNED.token, "4")).await,
        (403, "用户已被封禁".into())
    );
    for path in [
        "/api/log/",
        "/api/log",
        "/api/log/stat",
        "/api/log/search?keyword=x",
    ] {
        assert_eq!(
            get(path, h(ALICE.token, "2")).await,
            (403, "无权进行此操作，权限不足".into()),
            "{path}"
        );
    }
    let (status, _, body) = api
        .call(
            reqwest::Method::DELETE,
            "/api/log/?target_timestamp=1800000000",
            &[("Authorization", ALICE.token), ("New-Api-User", "2")],
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(api.db.count("SELECT count() FROM logs").await, 2);

    // English when Accept-Language prefers it.
    let (status, _, body) = api
        .call(
            reqwest::Method::GET,
            "/api/log/self",
            &[("Accept-Language", "en-US,en;q=0.9,zh;q=0.5")],
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        body["message"],
        "Unauthorized: not logged in and no access token provided"
    );

    // Bearer prefix, user id with spaces.
    let (status, _, body) = api
        .call(
            reqwest::Method::GET,
            "/api/log/self",
            &[
                ("Authorization", &format!("Bearer {}", ALICE.token)),
                ("New-Api-User", " 2 "),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["total"], 1);

    // An admin reaches user endpoints too, and sees only their own logs there.
    assert_eq!(api.data("/api/log/self", ADMIN).await["total"], 0);
    assert_eq!(api.data("/api/log/", ADMIN).await["total"], 2);

    // Disabling a user locks them out within seconds (identity cache TTL).
    assert_eq!(api.data("/api/log/self", BOB).await["total"], 1);
    api.seed(&[], &[user(BOB, "bob", 1, 2, 2)]).await;
    eventually("Bob to be locked out", Duration::from_secs(10), || async {
        let (status, body) = api.get("/api/log/self", Some(BOB)).await;
        (status == 403 && body["message"] == "用户已被封禁").then_some(())
    })
    .await;
    // Demoting an admin takes effect the same way.
    api.seed(&[], &[user(ADMIN, "root", 1, 1, 2)]).await;
    eventually("admin demoted", Duration::from_secs(10), || async {
        let (status, _) = api.get("/api/log/", Some(ADMIN)).await;
        (status == 403).then_some(())
    })
    .await;
    // A rotated access token: the old one stops working.
    let rotated = Caller {
        id: ALICE.id,
        token: "alice-new-token",
    };
    api.seed(&[], &[user(rotated, "alice", 1, 1, 2)]).await;
    eventually("old token rejected", Duration::from_secs(10), || async {
        let (status, _) = api.get("/api/log/self", Some(ALICE)).await;
        (status == 401).then_some(())
    })
    .await;
    assert_eq!(api.data("/api/log/self", rotated).await["total"], 1);

    api.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_never_500_and_openapi_lists_every_route() {
    let api = Api::start().await;
    let mut tricky = log(BASE, ALICE);
    tricky.model_name = Some("x' OR '1'='1".into());
    api.seed(&[tricky, log(BASE + 1, BOB)], &identities()).await;

    // SQL fragments are values like any other.
    for query in [
        "model_name=x'%20OR%20'1'%3D'1",
        "username=%27%3B%20DROP%20TABLE%20logs%3B%20--",
        "token_name=%5C%27%29%20OR%201%3D1%20--",
        "group=%7Bp0%3AString%7D",
        "request_id=%3F",
        "channel=1%20OR%201%3D1",
    ] {
        let (status, body) = api.get(&format!("/api/log/?{query}"), Some(ADMIN)).await;
        assert!(status == 200 || status == 400, "{query}: {status} {body}");
        if status == 200 {
            assert!(
                body["data"]["total"].as_u64().unwrap() <= 1,
                "{query}: {body}"
            );
        }
    }
    let data = api
        .data("/api/log/?model_name=x'%20OR%20'1'%3D'1", ADMIN)
        .await;
    assert_eq!(data["total"], 1, "the literal value matches exactly");
    assert_eq!(api.db.count("SELECT count() FROM logs").await, 2);

    let cases: &[(&str, u16)] = &[
        ("/api/log/?type=abc", 400),
        ("/api/log/?type=99999999999999999999999", 400),
        ("/api/log/?type=-1", 400),
        ("/api/log/?type=256", 400),
        ("/api/log/?start_timestamp=abc", 400),
        ("/api/log/?start_timestamp=-5", 400),
        ("/api/log/?start_timestamp=99999999999", 200),
        ("/api/log/?end_timestamp=99999999999", 200),
        ("/api/log/?end_timestamp=9223372036854775807", 200),
        ("/api/log/?end_timestamp=9223372036854775808", 400),
        ("/api/log/?channel=1e5", 400),
        ("/api/log/?channel=-9223372036854775808", 200),
        ("/api/log/?username=%ff%fe", 400),
        ("/api/log/?%ff=1", 400),
        ("/api/log/?model_name=%E4%B8%AD%E6%96%87", 200),
        ("/api/log/?model_name=%zz", 200),
        ("/api/log/?&&&=&==&p", 200),
        ("/api/log/stat?start_timestamp=1.5", 400),
        ("/api/log/stat?end_timestamp=99999999999", 200),
        ("/api/log/stat?start_timestamp=99999999999", 200),
        ("/api/log/search?keyword=%ff", 400),
        ("/api/log/search?keyword=99999999999999999999999999", 200),
        ("/api/log/search?keyword=%27%29%3B--", 200),
        ("/api/log/?target_timestamp=abc", 200),
        ("/api/log/nope", 404),
    ];
    for (path, expected) in cases {
        let (status, body) = api.get(path, Some(ADMIN)).await;
        assert_eq!(status, *expected, "{path}: {body}");
        assert_eq!(body["success"], *expected == 200, "{path}: {body}");
        if *expected != 200 {
            assert!(!body["message"].as_str().unwrap().is_empty(), "{path}");
        }
    }
    let long = format!("/api/log/?model_name={}", "a".repeat(5000));
    let (status, body) = api.get(&long, Some(ADMIN)).await;
    assert_eq!(status, 400, "{body}");
    for (path, fragment) in [
        ("/api/log/?type=abc", "type"),
        ("/api/log/?username=%ff", "UTF-8"),
    ] {
        let (_, body) = api.get(path, Some(ADMIN)).await;
        assert!(
            body["message"].as_str().unwrap().contains(fragment),
            "{path}: {body}"
        );
    }
    let (status, _, body) = api
        .call(
            reqwest::Method::DELETE,
            "/api/log/?target_timestamp=abc",
            &[("Authorization", ADMIN.token), ("New-Api-User", "1")],
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = api.call(reqwest::Method::PUT, "/api/log/", &[]).await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(body["success"], false);

    // The OpenAPI document describes every route, and every route answers, with and
    // without a trailing slash.
    let (status, doc) = api.get("/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (method, path) in logbus_query_api::ROUTES {
        assert!(
            doc["paths"][path][method.to_ascii_lowercase()].is_object(),
            "{method} {path} missing from /openapi.json"
        );
        let twin = match path.strip_suffix('/') {
            Some(bare) => bare.to_owned(),
            None => format!("{path}/"),
        };
        for p in [path.to_string(), twin] {
            // The exports answer files and the tails a stream that lasts minutes, not JSON:
            // a bad parameter gets their envelope instead (api/tail.rs reads the streams).
            let p = if path.ends_with("/export") {
                format!("{p}?format=bogus")
            } else if path.ends_with("/tail") {
                format!("{p}?type=abc")
            } else {
                p
            };
            // The Prometheus text of /metrics is not JSON (api/metrics.rs reads it).
            if *path == "/metrics" {
                let response = api.http.get(format!("{}{p}", api.base)).send().await;
                assert_eq!(response.expect("sent").status(), 200, "{p}");
                continue;
            }
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let (status, _, body) = api
                .call(
                    method.clone(),
                    &p,
                    &[("Authorization", ADMIN.token), ("New-Api-User", "1")],
                )
                .await;
            assert!(
                status != 404 && status != 405 && status < 500,
                "{method} {p}: {status} {body}"
            );
        }
    }
    let (status, health) = api.get("/healthz", None).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["data"], "ok");

    api.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_failures_get_the_generic_message() {
    use logbus_projections::rows::UserRow;

    // A database whose log tables are gone: authentication works, every log query fails.
    let db = crate::support::TestDatabase::migrated().await;
    let mut users = db.client.insert::<UserRow>("users").await.unwrap();
    users
        .write(&UserRow {
            id: ADMIN.id,
            username: "root".into(),
            role: 100,
            status: 1,
            group: "default".into(),
            access_token_sha256: logbus_projections::identity::hash_access_token(ADMIN.token),
            version: 1,
        })
        .await
        .unwrap();
    users.end().await.unwrap();
    for table in ["logs_minute_mv", "logs_minute", "logs", "tokens"] {
        db.client
            .query(&format!("DROP TABLE {table}"))
            .execute()
            .await
            .unwrap();
    }
    let serve = |clickhouse| async move {
        crate::support::services::ServedApi::start(&crate::support::services::api_config(
            clickhouse,
        ))
        .await
    };
    let http = reqwest::Client::new();
    let call = |url: String, lang: &'static str| {
        let http = http.clone();
        async move {
            let response = http
                .get(url)
                .header("Authorization", ADMIN.token)
                .header("New-Api-User", "1")
                .header("Accept-Language", lang)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            (status, body["message"].as_str().unwrap().to_owned())
        }
    };
    let api = serve(crate::support::services::clickhouse_args(&db.name)).await;
    let base = &api.base;
    for (path, zh, en) in [
        ("/api/log/", "获取日志失败", "Failed to get logs"),
        ("/api/log/self", "获取日志失败", "Failed to get logs"),
        (
            "/api/log/stat",
            "获取统计信息失败",
            "Failed to get statistics",
        ),
        (
            "/api/log/search?keyword=x",
            "搜索日志失败",
            "Failed to search logs",
        ),
        (
            "/api/log/token?key=sk-x",
            "获取日志失败",
            "Failed to get logs",
        ),
    ] {
        assert_eq!(
            call(format!("{base}{path}"), "zh-CN").await,
            (500, zh.into())
        );
        assert_eq!(call(format!("{base}{path}"), "en").await, (500, en.into()));
    }
    let (status, _, body) = {
        let response = http
            .delete(format!("{base}/api/log/?target_timestamp=1700000000"))
            .header("Authorization", ADMIN.token)
            .header("New-Api-User", "1")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, headers, response.json::<Value>().await.unwrap())
    };
    assert_eq!(
        (status, body["message"].clone()),
        (500, "删除日志失败".into())
    );

    // ClickHouse unreachable: identity lookups and health fail cleanly too.
    let down = serve(logbus_runtime::ClickHouseArgs::new(
        "http://127.0.0.1:1",
        "logbus",
    ))
    .await;
    let down = &down.base;
    assert_eq!(
        call(format!("{down}/api/log/"), "zh").await,
        (500, "验证身份失败".into())
    );
    assert_eq!(call(format!("{down}/healthz"), "zh").await.0, 500);
    db.drop_database().await;
}
