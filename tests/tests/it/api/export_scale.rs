//! The export at scale: a million rows, generated inside ClickHouse (`INSERT ... SELECT FROM
//! numbers()` on a ClickHouse front of the test's own, seconds instead of minutes through
//! Kafka), exported by the API running as a
//! process of its own, parse back (CSV and JSON Lines) to exactly the list's rows while the
//! process's peak resident set stays far below the size of either file; then a client that
//! disconnects after the first chunk makes the API close its ClickHouse connection (which
//! cancels the query on a ClickHouse server) long before the result was read.

use std::io::BufRead;
use std::time::Duration;

use clickhouse::Row;
use logbus_projections::rows::LogRow;
use logbus_query_api::views::{LogItem, View, columns};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::export::csv_record;
use crate::support::api::*;
use crate::support::api_process::ApiProcess;
use crate::support::proxy::Proxy;
use crate::support::{
    Scratch, TestDatabase, eventually, free_port, heavy_test, init_tracing, unique_name,
};
use logbus_devstack::ChFront;

const ROWS: u64 = 1_000_000;
/// What the API process may hold at its peak: its own code and buffers, nowhere near the
/// files it writes (176 and 439 MB; measured peak 19 MB in a debug build, idle 15 MB).
const RSS_BOUND: u64 = 64 * 1024 * 1024;

/// `n` logs of Alice and Bob, five per second, with the content the quoting cases need and
/// `other` values the user view must strip (an object with admin keys, none, not JSON).
async fn generate_logs(db: &TestDatabase, n: u64) {
    let sql = format!(
        "INSERT INTO logs (event_id, created_at, type, user_id, username, token_id, token_name,
             model_name, quota, prompt_tokens, completion_tokens, use_time, is_stream,
             channel_id, channel_name, `group`, ip, request_id, upstream_request_id, content,
             other, ingest_batch)
         SELECT generateUUIDv4(number), toDateTime(1700000000 + intDiv(number, 5), 'UTC'),
             if(number % 10 = 0, 5, 2), 2 + number % 2, if(number % 2 = 0, 'alice', 'bob'),
             21 + 10 * (number % 2), if(number % 2 = 0, 'alice-token', 'bob-token'),
             ['gpt-4o', 'claude-3', '模型,\"x\"'][number % 3 + 1], number % 1000, number % 77,
             number % 91, toInt32(number % 5), number % 2 = 0, number % 4,
             concat('ch-', toString(number % 4)), 'default',
             concat('10.0.', toString(number % 256), '.1'), concat('req-', toString(number)), '',
             ['plain', 'a, b', 'say \"hi\"', 'line 1\\nline 2\\r\\nline 3', '中文，日志 😀', ''][number % 6 + 1],
             multiIf(number % 3 = 0, '{{\"model_ratio\":2.5,\"admin_info\":{{\"x\":1}}}}',
                     number % 3 = 1, '', 'not json'),
             0
         FROM numbers({n})"
    );
    db.client
        .query(&sql)
        .execute()
        .await
        .expect("generate logs");
    assert_eq!(db.count("SELECT count() FROM logs").await, n);
}

/// One parsed line of an export: a CSV record or a JSON line.
enum Parsed {
    Csv(Vec<String>),
    Json(Value),
}

#[derive(Debug, Row, serde::Deserialize)]
struct Sums {
    quota: i64,
    prompt: i64,
    completion: i64,
}

/// Downloads `path` into `file`, then parses it on a blocking thread and compares each parsed
/// line with the next row ClickHouse gives in list order, as the list shows it; checks the
/// list's first and 100th pages against the same rows. Returns the file's size.
///
/// The download finishes first because the dev ClickHouse front closes a connection whose
/// reader stalls for 10 s, and the comparison's own query would stall the export's reader.
async fn compare_export(
    api: &ApiProcess,
    db: &TestDatabase,
    path: &str,
    caller: Caller,
    file: &std::path::Path,
) -> u64 {
    let jsonl = path.contains("format=jsonl");
    let view = if path.contains("/self/") {
        View::User
    } else {
        View::Admin
    };
    let (line_tx, mut line_rx) = tokio::sync::mpsc::channel::<Parsed>(1024);
    let mut response = reqwest::Client::new()
        .get(format!("{}{path}", api.base))
        .header("Authorization", caller.token)
        .header("New-Api-User", caller.id.to_string())
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 200, "{path}");
    let mut out = tokio::fs::File::create(file)
        .await
        .expect("create the file");
    let mut size = 0u64;
    while let Some(chunk) = response.chunk().await.expect("the whole body") {
        size += chunk.len() as u64;
        out.write_all(&chunk).await.expect("write the file");
    }
    out.flush().await.expect("flush the file");
    let reader = std::io::BufReader::new(std::fs::File::open(file).expect("open the file"));
    let parse = tokio::task::spawn_blocking(move || {
        if jsonl {
            for line in reader.lines() {
                let value = serde_json::from_str(&line.expect("UTF-8")).expect("a JSON line");
                if line_tx.blocking_send(Parsed::Json(value)).is_err() {
                    return;
                }
            }
        } else {
            let mut reader = csv::Reader::from_reader(reader);
            let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
            assert_eq!(header, columns(view));
            for record in reader.records() {
                let record = record
                    .expect("a valid record")
                    .iter()
                    .map(String::from)
                    .collect();
                if line_tx.blocking_send(Parsed::Csv(record)).is_err() {
                    return;
                }
            }
        }
    });
    let filter = if view == View::User {
        format!("WHERE user_id = {}", caller.id)
    } else {
        String::new()
    };
    let mut expected = db
        .client
        .query(&format!(
            "SELECT ?fields FROM logs {filter} ORDER BY created_at DESC, event_id DESC"
        ))
        .fetch::<LogRow>()
        .expect("expected rows");
    let mut n = 0u64;
    let mut samples = Vec::new();
    while let Some(row) = expected.next().await.expect("expected row") {
        n += 1;
        let item = serde_json::to_value(LogItem::new(row, n, view)).unwrap();
        match line_rx.recv().await {
            Some(Parsed::Json(line)) => assert_eq!(line, item, "{path}: row {n}"),
            Some(Parsed::Csv(record)) => {
                assert_eq!(record, csv_record(&item, &columns(view)), "{path}: row {n}")
            }
            None => panic!("{path}: the file ends after {} rows", n - 1),
        }
        if n <= 100 || (9_901..=10_000).contains(&n) {
            samples.push(item);
        }
    }
    let totals = if path.contains("totals=true") {
        line_rx.recv().await
    } else {
        None
    };
    assert!(
        line_rx.recv().await.is_none(),
        "{path}: nothing after row {n}"
    );
    if let Some(Parsed::Json(totals)) = totals {
        let sums = db
            .client
            .query(&format!(
                "SELECT sum(quota) AS quota, sum(prompt_tokens) AS prompt, \
                 sum(completion_tokens) AS completion FROM logs {filter}"
            ))
            .fetch_one::<Sums>()
            .await
            .expect("sums");
        assert_eq!(
            totals,
            serde_json::json!({"totals": {"rows": n, "quota": sums.quota,
                "prompt_tokens": sums.prompt, "completion_tokens": sums.completion}})
        );
    }
    parse.await.expect("the parser finished");
    // The list shows the same rows at the same places: its first and 100th pages.
    let list = if view == View::User {
        "/api/log/self"
    } else {
        "/api/log/"
    };
    let http = reqwest::Client::new();
    for (page, expected) in [(1, &samples[..100]), (100, &samples[100..])] {
        let body: Value = http
            .get(format!("{}{list}?p={page}&page_size=100", api.base))
            .header("Authorization", caller.token)
            .header("New-Api-User", caller.id.to_string())
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("JSON");
        assert_eq!(
            body["data"]["items"].as_array().unwrap(),
            expected,
            "{list} p={page}"
        );
        assert_eq!(body["data"]["total"], n);
    }
    std::fs::remove_file(file).expect("remove the file");
    size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_row_export_parses_back_to_the_list_in_bounded_memory_and_stops_on_disconnect() {
    let _heavy = heavy_test().await;
    init_tracing();
    // A ClickHouse front of the test's own: the million rows and their exports never take
    // the shared front's connections or cores from other tests, and the front runs this
    // checkout's chfront.
    let scratch = Scratch::new("export");
    let front = ChFront::start(
        free_port(),
        scratch.path().join("clickhouse"),
        scratch.path().join("chfront.log"),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let root = clickhouse::Client::default().with_url(front.url());
    let name = unique_name("test");
    logbus_projections::migrate(&root, &name, Default::default())
        .await
        .expect("migrations apply");
    let db = TestDatabase {
        client: root.with_database(&name),
        name,
    };
    insert_rows(&db, &[], &identities()).await;
    generate_logs(&db, ROWS).await;
    // The API reaches ClickHouse through a proxy that counts what each connection carried.
    let address = front
        .url()
        .trim_start_matches("http://")
        .parse()
        .expect("an address");
    let proxy = Proxy::start(address).await;
    let api = ApiProcess::spawn(
        &format!("http://{}", proxy.addr),
        &db.name,
        &scratch.path().join("query-api.log"),
    )
    .await;
    let idle_rss = api.peak_rss();
    let file = scratch.path().join("export");

    let csv_bytes = compare_export(&api, &db, "/api/log/export", ADMIN, &file).await;
    let full_result = proxy
        .connections()
        .iter()
        .map(|(down, _)| *down)
        .max()
        .unwrap();
    let jsonl_bytes = compare_export(
        &api,
        &db,
        "/api/log/export?format=jsonl&totals=true",
        ADMIN,
        &file,
    )
    .await;
    let self_bytes =
        compare_export(&api, &db, "/api/log/self/export?format=jsonl", ALICE, &file).await;
    let peak = api.peak_rss();
    eprintln!(
        "export of {ROWS} rows: CSV {csv_bytes} B, JSON Lines {jsonl_bytes} B, self {self_bytes} B; \
         API peak RSS {peak} B (idle {idle_rss} B, now {} B); ClickHouse result {full_result} B",
        api.rss()
    );
    assert!(
        csv_bytes.min(jsonl_bytes) > 2 * RSS_BOUND,
        "the files dwarf the bound"
    );
    assert!(
        peak < RSS_BOUND,
        "the API's peak RSS {peak} B stays under {RSS_BOUND} B:\n{}",
        api.log_tail(20)
    );

    // A client that reads one chunk and goes away.
    let before = proxy.connections();
    let mut response = reqwest::Client::new()
        .get(format!("{}/api/log/export", api.base))
        .header("Authorization", ADMIN.token)
        .header("New-Api-User", ADMIN.id.to_string())
        .send()
        .await
        .expect("request sent");
    let first = response.chunk().await.expect("a chunk").expect("not empty");
    assert!(first.starts_with(b"id,event_id,"));
    drop(response);
    // The export's connection is the one that carried the most since (pooled connections
    // are reused, so each counts from what it had carried before).
    let carried = eventually(
        "the export's ClickHouse connection to close",
        Duration::from_secs(60),
        || {
            let export = proxy
                .connections()
                .into_iter()
                .enumerate()
                .map(|(i, (down, closed))| (down - before.get(i).map_or(0, |b| b.0), closed))
                .max_by_key(|(delta, _)| *delta);
            std::future::ready(export.and_then(|(delta, closed)| closed.then_some(delta)))
        },
    )
    .await;
    eprintln!(
        "disconnected export: its ClickHouse connection carried {carried} of {full_result} B"
    );
    assert!(
        carried < full_result / 2,
        "the API stopped reading: {carried} of {full_result} B"
    );
    assert!(api.peak_rss() < RSS_BOUND);
    let health = reqwest::get(format!("{}/healthz", api.base))
        .await
        .expect("health");
    assert_eq!(health.status(), 200, "the API serves on");
    // The database goes with the private front and its scratch folder.
}
