//! Pagination of the lists beyond the first pages (issue 15, item 2): offset pages stop at a
//! window of 10,000 rows with a 400 that names the cursor, and walking a whole set by cursor
//! (`next_cursor` → `cursor`) returns every row exactly once, in list order.

use std::collections::HashSet;

use crate::support::api::*;
use serde_json::Value;

const BASE: i64 = 1_700_200_000;

/// Walks `path` page by page through `next_cursor`; returns the items in order and the pages.
async fn walk(api: &Api, path: &str, caller: Caller) -> (Vec<Value>, usize) {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            None => path.to_owned(),
            Some(c) => format!("{path}{separator}cursor={c}"),
        };
        let data = api.data(&url, caller).await;
        pages += 1;
        items.extend(data["items"].as_array().expect("items").iter().cloned());
        match data["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert!(data["next_cursor"].is_null(), "{url}: {data}");
                return (items, pages);
            }
        }
        assert!(pages < 1_000, "{path}: the walk ends");
    }
}

fn event_ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["event_id"].as_str().expect("event_id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_stop_at_the_window_and_cursors_walk_every_row_once_in_order() {
    let api = Api::start().await;
    // 203 logs over 20 seconds: many share a second, so the order within a second (event_id)
    // decides where pages cut.
    let mut events = Vec::new();
    for i in 0..203 {
        let caller = if i % 3 == 0 { BOB } else { ALICE };
        let mut event = log(BASE + i % 20, caller);
        if i % 5 == 0 {
            event.log_type = 5;
        }
        events.push(event);
    }
    api.seed(&events, &identities()).await;

    // The window: p * page_size up to 10,000 is served, beyond is a 400 naming the cursor.
    for (path, caller) in [("/api/log/", ADMIN), ("/api/log/self", ALICE)] {
        for query in ["p=100&page_size=100", "p=500", "p=10000&page_size=1"] {
            let (status, body) = api.get(&format!("{path}?{query}"), Some(caller)).await;
            assert_eq!(status, 200, "{path}?{query}: {body}");
            assert_eq!(body["data"]["items"], Value::Array(vec![]), "past the end");
        }
        for query in [
            "p=101&page_size=100",
            "p=501",
            "p=100000&page_size=100",
            "p=9223372036854775807",
        ] {
            let (status, body) = api.get(&format!("{path}?{query}"), Some(caller)).await;
            assert_eq!(status, 400, "{path}?{query}: {body}");
            assert_eq!(body["success"], false);
            let message = body["message"].as_str().unwrap();
            assert!(
                message.contains("cursor") && message.contains("10000"),
                "{message}"
            );
        }
    }
    let (_, _, body) = api
        .call(
            reqwest::Method::GET,
            "/api/log/?p=101&page_size=100",
            &[
                ("Authorization", ADMIN.token),
                ("New-Api-User", "1"),
                ("Accept-Language", "en"),
            ],
        )
        .await;
    assert!(
        body["message"].as_str().unwrap().contains("next_cursor"),
        "{body}"
    );

    // Walking by cursor returns exactly the rows in list order, each once, numbered on.
    for (path, caller, filter) in [
        ("/api/log/?page_size=7", ADMIN, String::new()),
        ("/api/log/?page_size=100", ADMIN, String::new()),
        (
            "/api/log/?type=5&page_size=4",
            ADMIN,
            "WHERE type = 5".into(),
        ),
        (
            "/api/log/self?page_size=9",
            ALICE,
            format!("WHERE user_id = {}", ALICE.id),
        ),
        (
            "/api/log/self?page_size=3&start_timestamp=1700200005&end_timestamp=1700200011",
            ALICE,
            format!(
                "WHERE user_id = {} AND created_at BETWEEN 1700200005 AND 1700200011",
                ALICE.id
            ),
        ),
    ] {
        let expected: Vec<String> = api
            .db
            .client
            .query(&format!(
                "SELECT toString(event_id) FROM logs {filter} ORDER BY created_at DESC, event_id DESC"
            ))
            .fetch_all::<String>()
            .await
            .expect("expected order");
        let (items, pages) = walk(&api, path, caller).await;
        let ids = event_ids(&items);
        assert_eq!(ids, expected, "{path}: every row once, in order");
        assert_eq!(
            ids.iter().collect::<HashSet<_>>().len(),
            ids.len(),
            "{path}"
        );
        let numbers: Vec<u64> = items.iter().map(|i| i["id"].as_u64().unwrap()).collect();
        assert_eq!(
            numbers,
            (1..=ids.len() as u64).collect::<Vec<_>>(),
            "{path}: id counts on"
        );
        let page_size: usize = path
            .split("page_size=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            pages,
            expected.len().div_ceil(page_size).max(1),
            "{path}: no empty last page"
        );
    }

    // A cursor from an offset page continues exactly as the next offset page does, and the
    // total and views are those of the list.
    let p1 = api.data("/api/log/self?page_size=10", ALICE).await;
    let p2 = api.data("/api/log/self?p=2&page_size=10", ALICE).await;
    let cursor = p1["next_cursor"].as_str().expect("a next page");
    let after = api
        .data(
            &format!("/api/log/self?page_size=10&p=7&cursor={cursor}"),
            ALICE,
        )
        .await;
    assert_eq!(after["items"], p2["items"], "cursor wins over p");
    assert_eq!(after["total"], p2["total"]);
    assert_eq!(after["page"], 2);
    assert!(after["items"][0].get("ip").is_none(), "user view");

    // A cursor that this API did not issue is a 400, never a 500.
    for bad in ["abc", "zz", "00", &cursor[2..], "%00"] {
        let (status, body) = api
            .get(&format!("/api/log/?cursor={bad}"), Some(ADMIN))
            .await;
        assert_eq!(status, 400, "cursor={bad}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains("cursor"),
            "{body}"
        );
    }
    api.finish().await;
}
