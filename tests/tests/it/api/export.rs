//! Acceptance tests of the export endpoints (`/api/log/export`, `/api/log/self/export`) on a
//! small set: the file parses back (CSV and JSON Lines) to exactly the list's items, RFC 4180
//! quoting of hostile content, the user view, filters, totals, headers, auth and bad input.
//! The million-row export, its memory and the disconnect are in `export_scale`.

use std::collections::BTreeMap;

use crate::support::api::*;
use logbus_query_api::views::{View, columns};
use serde_json::Value;

const BASE: i64 = 1_700_100_000;

/// What an export answered: status, headers and the whole body.
pub(super) async fn download(
    api: &Api,
    path: &str,
    caller: Option<Caller>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = api.http.get(format!("{}{path}", api.base));
    if let Some(caller) = caller {
        request = request
            .header("Authorization", caller.token)
            .header("New-Api-User", caller.id.to_string());
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body read").to_vec();
    (status, headers, body)
}

/// A list item as the CSV writes it: each column's JSON value, strings unquoted.
pub(super) fn csv_record(item: &Value, columns: &[&str]) -> Vec<String> {
    columns
        .iter()
        .map(|column| match &item[*column] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// The header and records of a CSV file, read with the `csv` crate (RFC 4180).
fn parse_csv(body: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(body);
    let header = reader
        .headers()
        .expect("a header")
        .iter()
        .map(String::from)
        .collect();
    let records = reader
        .records()
        .map(|r| {
            r.expect("a valid record")
                .iter()
                .map(String::from)
                .collect()
        })
        .collect();
    (header, records)
}

fn parse_jsonl(body: &[u8]) -> Vec<Value> {
    std::str::from_utf8(body)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// Every item of a list (at most 100 here), in order.
async fn list_items(api: &Api, path: &str, caller: Caller) -> Vec<Value> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let data = api
        .data(&format!("{path}{separator}page_size=100"), caller)
        .await;
    assert!(data["total"].as_u64().unwrap() <= 100, "{path}: one page");
    data["items"].as_array().expect("items").clone()
}

/// The export of `query` in both formats equals the list of the same filters.
async fn assert_export_equals_list(
    api: &Api,
    list: &str,
    export: &str,
    caller: Caller,
    view: View,
) {
    let items = list_items(api, list, caller).await;
    let (status, headers, body) = download(api, export, Some(caller)).await;
    assert_eq!(status, 200, "{export}: {}", String::from_utf8_lossy(&body));
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let (header, records) = parse_csv(&body);
    assert_eq!(header, columns(view), "{export}: the list item's keys");
    let expected: Vec<Vec<String>> = items
        .iter()
        .map(|i| csv_record(i, &columns(view)))
        .collect();
    assert_eq!(records, expected, "{export}: CSV rows equal the list's");
    let jsonl = format!(
        "{export}{}format=jsonl",
        if export.contains('?') { '&' } else { '?' }
    );
    let (status, headers, body) = download(api, &jsonl, Some(caller)).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/x-ndjson")
    );
    assert_eq!(
        parse_jsonl(&body),
        items,
        "{jsonl}: lines equal the list's items"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_equals_the_list_with_quoting_views_filters_and_auth() {
    let api = Api::start().await;
    let contents = [
        "a, b",
        "say \"hi\", then \"\"bye\"\"",
        "line 1\nline 2\r\nline 3",
        "中文，日志：成功 😀",
        "",
        "trailing space ",
    ];
    let mut events = Vec::new();
    for (i, content) in contents.iter().enumerate() {
        for caller in [ALICE, BOB] {
            let mut event = log(BASE + i as i64, caller);
            event.content = Some((*content).into());
            event.model_name = Some(if i % 2 == 0 { "gpt-4o" } else { "模型,\"x\"" }.into());
            events.push(event);
        }
    }
    let mut odd = log(BASE + 100, ALICE);
    odd.log_type = 5;
    odd.other =
        Some(serde_json::json!({"admin_info": {"secret": "s"}, "audit_info": "a", "ok": 1}));
    events.push(odd);
    api.seed(&events, &identities()).await;

    // Admin and user views, with and without filters, equal the lists.
    for (list, export) in [
        ("/api/log/", "/api/log/export"),
        ("/api/log/?type=5", "/api/log/export?type=5"),
        (
            "/api/log/?model_name=%E6%A8%A1%E5%9E%8B,%22x%22",
            "/api/log/export/?model_name=%E6%A8%A1%E5%9E%8B,%22x%22",
        ),
        (
            "/api/log/?username=bob&start_timestamp=1700100001&end_timestamp=1700100003",
            "/api/log/export?username=bob&start_timestamp=1700100001&end_timestamp=1700100003",
        ),
    ] {
        assert_export_equals_list(&api, list, export, ADMIN, View::Admin).await;
    }
    for (list, export) in [
        ("/api/log/self", "/api/log/self/export"),
        ("/api/log/self?type=2", "/api/log/self/export?type=2"),
        // `username` is ignored by the self endpoints, as by the self list.
        (
            "/api/log/self?username=bob",
            "/api/log/self/export?username=bob",
        ),
    ] {
        assert_export_equals_list(&api, list, export, ALICE, View::User).await;
    }

    // The user view hides exactly what the user list hides.
    let (_, _, body) = download(&api, "/api/log/self/export?format=jsonl", Some(ALICE)).await;
    let lines = parse_jsonl(&body);
    assert_eq!(lines.len(), contents.len() + 1, "only Alice's logs");
    for line in &lines {
        assert_eq!(line["user_id"], ALICE.id);
        assert_eq!(line["channel_name"], "");
        assert!(line.get("ip").is_none());
        assert!(!line["other"].as_str().unwrap().contains("admin_info"));
        assert!(!line["other"].as_str().unwrap().contains("audit_info"));
    }
    let (_, _, body) = download(&api, "/api/log/self/export", Some(ALICE)).await;
    let (header, _) = parse_csv(&body);
    assert!(
        !header.iter().any(|c| c == "ip"),
        "no ip column: {header:?}"
    );
    let (_, _, body) = download(&api, "/api/log/export", Some(ADMIN)).await;
    let text = String::from_utf8(body).expect("UTF-8");
    assert!(
        text.contains("\"say \"\"hi\"\", then \"\"\"\"bye\"\"\"\"\""),
        "quotes doubled"
    );
    assert!(
        text.contains("\"line 1\nline 2\r\nline 3\""),
        "line breaks quoted as they are"
    );
    assert!(text.contains("中文，日志：成功 😀"), "UTF-8 as is");
    assert!(
        text.contains("openai-main") && text.contains("203.0.113.7"),
        "admins see all"
    );

    // Totals: the last row, sums of the rows.
    let items = list_items(&api, "/api/log/", ADMIN).await;
    let sum = |key: &str| items.iter().map(|i| i[key].as_i64().unwrap()).sum::<i64>();
    let (_, _, body) = download(
        &api,
        "/api/log/export?format=jsonl&totals=true",
        Some(ADMIN),
    )
    .await;
    let lines = parse_jsonl(&body);
    assert_eq!(&lines[..items.len()], &items[..]);
    assert_eq!(
        lines[items.len()],
        serde_json::json!({"totals": {"rows": items.len(), "quota": sum("quota"),
            "prompt_tokens": sum("prompt_tokens"), "completion_tokens": sum("completion_tokens")}})
    );
    let (_, _, body) = download(&api, "/api/log/export?totals=1", Some(ADMIN)).await;
    let (header, records) = parse_csv(&body);
    let totals: BTreeMap<&str, &str> = header
        .iter()
        .map(String::as_str)
        .zip(records.last().unwrap().iter().map(String::as_str))
        .collect();
    assert_eq!(records.len(), items.len() + 1);
    assert_eq!(totals["id"], "totals");
    assert_eq!(totals["event_id"], items.len().to_string(), "the row count");
    assert_eq!(totals["quota"], sum("quota").to_string());
    assert_eq!(
        totals["completion_tokens"],
        sum("completion_tokens").to_string()
    );
    assert_eq!(totals["username"], "");

    // An attachment with a file name of its format.
    for (path, extension) in [
        ("/api/log/export", "csv"),
        ("/api/log/self/export?format=jsonl", "jsonl"),
    ] {
        let caller = if path.contains("self") { ALICE } else { ADMIN };
        let (_, headers, _) = download(&api, path, Some(caller)).await;
        let disposition = headers["content-disposition"].to_str().unwrap();
        assert!(
            disposition.starts_with("attachment; filename=\"logbus-"),
            "{disposition}"
        );
        assert!(
            disposition.ends_with(&format!(".{extension}\"")),
            "{disposition}"
        );
        assert_eq!(headers["cache-control"], "no-store");
    }

    // Refusals are envelopes, sent before any byte of a file.
    for (path, caller, status) in [
        ("/api/log/export", None, 401),
        ("/api/log/self/export", None, 401),
        ("/api/log/export", Some(ALICE), 403),
        ("/api/log/self/export", Some(BANNED), 403),
        ("/api/log/export?format=xlsx", Some(ADMIN), 400),
        ("/api/log/self/export?format=", Some(ALICE), 200),
        ("/api/log/self/export?totals=maybe", Some(ALICE), 400),
        ("/api/log/export?type=abc", Some(ADMIN), 400),
        ("/api/log/export?model_name=%25%25", Some(ADMIN), 400),
    ] {
        let (got, headers, body) = download(&api, path, caller).await;
        assert_eq!(got, status, "{path}: {}", String::from_utf8_lossy(&body));
        if status != 200 {
            assert!(
                headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json")
            );
            let envelope: Value = serde_json::from_slice(&body).expect("an envelope");
            assert_eq!(envelope["success"], false, "{path}");
        }
    }
    let (_, body) = api.get("/api/log/export?format=xlsx", Some(ADMIN)).await;
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("format") && message.contains("csv, jsonl"),
        "{message}"
    );
    api.finish().await;
}
