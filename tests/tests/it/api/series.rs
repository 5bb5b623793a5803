//! Acceptance tests of the time series (`/api/log/stat/series`, `/api/log/self/stat/series`):
//! sums equal to `/api/log/stat` and to the raw logs for ranges cut mid-minute, buckets per
//! interval and time zone, grouping, top N with `other`, whole minutes read from the rollup,
//! refusals and auth.

use std::collections::BTreeMap;

use crate::support::api::*;
use logbus_projections::events::LogEvent;
use serde_json::{Value, json};

/// 2023-11-14 00:00:00 UTC.
const DAY0: i64 = 1_699_920_000;
const DAY: i64 = 86_400;

/// (series key as JSON text, bucket) -> (requests, quota, prompt, completion).
type Points = BTreeMap<(String, i64), (u64, i64, i64, i64)>;

fn expected(
    events: &[LogEvent],
    start: i64,
    end: i64,
    keep: impl Fn(&LogEvent) -> bool,
    key: impl Fn(&LogEvent) -> Value,
    bucket: impl Fn(i64) -> i64,
) -> Points {
    let mut out = Points::new();
    for e in events
        .iter()
        .filter(|e| e.created_at >= start && e.created_at <= end && keep(e))
    {
        let sums = out
            .entry((key(e).to_string(), bucket(e.created_at)))
            .or_default();
        sums.0 += 1;
        sums.1 += e.quota.unwrap_or(0);
        sums.2 += e.prompt_tokens.unwrap_or(0);
        sums.3 += e.completion_tokens.unwrap_or(0);
    }
    out
}

/// The answer's points, checking that each series' total is the sum of its points and that
/// points ascend.
fn answered(data: &Value) -> Points {
    let mut out = Points::new();
    for series in data["series"].as_array().expect("series") {
        let key = if series["other"] == true {
            "other".to_owned()
        } else {
            series["key"].to_string()
        };
        let mut total = (0, 0, 0, 0);
        let mut last = i64::MIN;
        for p in series["points"].as_array().expect("points") {
            let t = p["t"].as_i64().unwrap();
            assert!(t > last, "points ascend: {series}");
            last = t;
            let sums = (
                p["requests"].as_u64().unwrap(),
                p["quota"].as_i64().unwrap(),
                p["prompt_tokens"].as_i64().unwrap(),
                p["completion_tokens"].as_i64().unwrap(),
            );
            total.0 += sums.0;
            total.1 += sums.1;
            total.2 += sums.2;
            total.3 += sums.3;
            out.insert((key.clone(), t), sums);
        }
        let reported = &series["total"];
        assert_eq!(
            (
                reported["requests"].as_u64().unwrap(),
                reported["quota"].as_i64().unwrap(),
                reported["prompt_tokens"].as_i64().unwrap(),
                reported["completion_tokens"].as_i64().unwrap()
            ),
            total,
            "{series}"
        );
    }
    out
}

fn quota_sum(points: &Points) -> i64 {
    points.values().map(|s| s.1).sum()
}

fn floor(ts: i64, unit: i64) -> i64 {
    ts.div_euclid(unit) * unit
}

/// Local midnight in a zone of fixed offset `offset` seconds (Shanghai and Kolkata have no DST).
fn local_day(ts: i64, offset: i64) -> i64 {
    floor(ts + offset, DAY) - offset
}

fn events() -> Vec<LogEvent> {
    let m0 = DAY0 + 22 * 3600;
    let offsets = [
        0,
        1,
        29,
        59,
        60,
        61,
        119,
        150,
        600,
        3599,
        3600,
        3601,
        7230,
        7260,
        9000,
        5 * 3600 + 7,
        DAY - 1,
        DAY,
        DAY + 45,
        DAY + 3600 * 3 + 59,
        2 * DAY + 1,
    ];
    let models = ["gpt-4o", "claude-3", "gemini-2", "gpt-4o"];
    offsets
        .iter()
        .enumerate()
        .map(|(i, offset)| {
            let who = if i % 3 == 0 { BOB } else { ALICE };
            let mut e = log(m0 + offset, who);
            e.quota = Some(1000 + (i as i64) * 37);
            e.prompt_tokens = Some(i as i64 + 1);
            e.completion_tokens = Some(2 * i as i64);
            e.model_name = Some(models[i % 4].into());
            if i % 2 == 0 {
                e.channel_id = Some(7);
                e.group = Some("vip".into());
            }
            if i % 7 == 5 {
                e.log_type = 5;
            }
            e
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_sums_equal_the_stat_and_the_raw_logs() {
    let api = Api::start().await;
    let events = events();
    // Two inserts: unmerged rollup rows of one key.
    api.seed(&events[..9], &identities()).await;
    api.seed(&events[9..], &[]).await;
    let m0 = DAY0 + 22 * 3600;

    let ranges = [
        (m0, m0 + 3 * DAY),
        (m0 + 1, m0 + 119),
        (m0 + 30, m0 + 7245),
        (m0 + 59, m0 + 60),
        (m0 + 61, m0 + 61),
        (m0 + 60, m0 + 119),
        (m0 - 1, m0 + DAY + 44),
        (m0 + 3599, m0 + DAY + 3600 * 3 + 58),
    ];
    type Filter = (&'static str, fn(&LogEvent) -> bool);
    let filters: [Filter; 6] = [
        ("", |e| e.log_type == 2),
        ("&type=5", |e| e.log_type == 5),
        ("&model_name=claude-3", |e| {
            e.log_type == 2 && e.model_name.as_deref() == Some("claude-3")
        }),
        ("&username=bob&channel=7", |e| {
            e.log_type == 2 && e.user_id == BOB.id && e.channel_id == Some(7)
        }),
        ("&token_name=alice-token&group=vip", |e| {
            e.log_type == 2 && e.user_id == ALICE.id && e.group.as_deref() == Some("vip")
        }),
        ("&model_name=gpt%25", |e| {
            e.log_type == 2 && e.model_name.as_deref() == Some("gpt-4o")
        }),
    ];
    for (start, end) in ranges {
        for (filter, keep) in &filters {
            let q = format!("start_timestamp={start}&end_timestamp={end}{filter}");
            let stat = api.data(&format!("/api/log/stat?{q}"), ADMIN).await;
            for (interval, unit) in [("minute", 60), ("hour", 3600), ("day", DAY)] {
                let path = format!("/api/log/stat/series?{q}&interval={interval}&group_by=model");
                let data = api.data(&path, ADMIN).await;
                let got = answered(&data);
                assert_eq!(quota_sum(&got), stat["quota"], "{path}");
                let want = expected(
                    &events,
                    start,
                    end,
                    keep,
                    |e| json!({"model_name": e.model_name}),
                    |ts| floor(ts, unit),
                );
                assert_eq!(got, want, "{path}");
                assert_eq!(data["start_timestamp"], start);
                assert_eq!(data["end_timestamp"], end);
            }
        }
        // The self variant: the caller's logs, `username` ignored.
        let q = format!("start_timestamp={start}&end_timestamp={end}");
        let stat = api.data(&format!("/api/log/self/stat?{q}"), ALICE).await;
        let path = format!("/api/log/self/stat/series?{q}&username=bob&group_by=user");
        let got = answered(&api.data(&path, ALICE).await);
        assert_eq!(quota_sum(&got), stat["quota"], "{path}");
        let want = expected(
            &events,
            start,
            end,
            |e| e.log_type == 2 && e.user_id == ALICE.id,
            |_| json!({"user_id": ALICE.id, "username": "alice"}),
            |ts| floor(ts, 3600),
        );
        assert_eq!(got, want, "{path}");
    }
    // A request id filter is answered from the raw rows alone, exactly.
    let one = &events[3];
    let path = format!(
        "/api/log/stat/series?start_timestamp={m0}&request_id={}",
        one.request_id.as_deref().unwrap()
    );
    let got = answered(&api.data(&path, ADMIN).await);
    assert_eq!(quota_sum(&got), one.quota.unwrap(), "{path}");

    api.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_group_top_and_time_zones() {
    let api = Api::start().await;
    let events = events();
    api.seed(&events, &identities()).await;
    let (start, end) = (DAY0, DAY0 + 4 * DAY);
    let q = format!("start_timestamp={start}&end_timestamp={end}");
    let consume = |e: &LogEvent| e.log_type == 2;

    // Two dimensions: one series per (model, channel).
    let path = format!("/api/log/stat/series?{q}&group_by=model,channel&interval=day");
    let got = answered(&api.data(&path, ADMIN).await);
    let want = expected(
        &events,
        start,
        end,
        consume,
        |e| json!({"model_name": e.model_name, "channel": e.channel_id}),
        |ts| floor(ts, DAY),
    );
    assert_eq!(got, want, "{path}");

    // top: the N series with the largest quota, the rest summed as `other`, nothing lost.
    let mut totals: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for e in events.iter().filter(|e| consume(e)) {
        *totals
            .entry((e.model_name.clone().unwrap(), e.user_id))
            .or_default() += e.quota.unwrap();
    }
    let mut ranked: Vec<_> = totals.into_iter().collect();
    ranked.sort_by_key(|r| std::cmp::Reverse(r.1));
    let path = format!("/api/log/stat/series?{q}&group_by=model,user&top=2&interval=hour");
    let data = api.data(&path, ADMIN).await;
    let series = data["series"].as_array().unwrap();
    assert_eq!(series.len(), 3, "{data}");
    for (i, s) in series[..2].iter().enumerate() {
        assert_eq!(s["other"], false);
        assert_eq!(s["key"]["model_name"], ranked[i].0.0, "{data}");
        assert_eq!(s["key"]["user_id"], ranked[i].0.1, "{data}");
        assert_eq!(s["total"]["quota"], ranked[i].1, "{data}");
    }
    assert_eq!(series[2]["other"], true);
    assert_eq!(series[2]["key"], json!({}));
    let rest: i64 = ranked[2..].iter().map(|r| r.1).sum();
    assert_eq!(series[2]["total"]["quota"], rest, "{data}");
    // top larger than the number of series: no `other`.
    let path = format!("/api/log/stat/series?{q}&group_by=group&top=5");
    let data = api.data(&path, ADMIN).await;
    assert!(
        data["series"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["other"] == false)
    );
    assert_eq!(data["series"].as_array().unwrap().len(), 2, "{data}");

    // Day buckets start at local midnight: +8 (Shanghai) and +5:30 (Kolkata, not on the hour).
    for (tz, offset) in [
        ("UTC", 0),
        ("Asia/Shanghai", 8 * 3600),
        ("Asia/Kolkata", 19_800),
    ] {
        let path = format!("/api/log/stat/series?{q}&interval=day&tz={tz}");
        let data = api.data(&path, ADMIN).await;
        assert_eq!(data["tz"], tz);
        let want = expected(
            &events,
            start,
            end,
            consume,
            |_| json!({}),
            |ts| local_day(ts, offset),
        );
        assert_eq!(answered(&data), want, "{path}");
    }
    // No group_by: one series with an empty key.
    let data = api
        .data(&format!("/api/log/stat/series?{q}&interval=minute"), ADMIN)
        .await;
    assert_eq!(data["series"].as_array().unwrap().len(), 1);
    assert_eq!(data["series"][0]["key"], json!({}));
    assert_eq!(data["group_by"], json!([]));
    // A range with nothing in it: no series.
    let data = api
        .data(
            "/api/log/stat/series?start_timestamp=1000&end_timestamp=2000",
            ADMIN,
        )
        .await;
    assert_eq!(data["series"], json!([]));

    // Whole minutes really come from the rollup: a marker row in the rollup (with no raw
    // row) counts when its minute is wholly inside the range, not when only part of it is.
    // The dashboard rows are whole hours, so they see it too.
    api.db
        .client
        .query(
            "INSERT INTO logs_minute (minute, type, user_id, username, token_id, token_name, \
             model_name, channel_id, `group`, requests, quota, prompt_tokens, completion_tokens) \
             VALUES (?, 2, 99, 'marker', 0, '', 'marker', 0, '', 1, 1000000, 0, 0)",
        )
        .bind(DAY0 + 60)
        .execute()
        .await
        .unwrap();
    let marker = |data: &Value| {
        data["series"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"]["model_name"] == "marker")
            .map(|s| s["total"]["quota"].clone())
    };
    let path = format!(
        "/api/log/stat/series?start_timestamp={DAY0}&end_timestamp={}&group_by=model&interval=minute",
        DAY0 + 119
    );
    assert_eq!(
        marker(&api.data(&path, ADMIN).await),
        Some(json!(1_000_000)),
        "{path}"
    );
    let path = format!(
        "/api/log/stat/series?start_timestamp={}&end_timestamp={}&group_by=model",
        DAY0 + 61,
        DAY0 + 119
    );
    assert_eq!(marker(&api.data(&path, ADMIN).await), None, "{path}");
    let path = format!("/api/data/?start_timestamp={DAY0}&end_timestamp={DAY0}");
    let data = api.data(&path, ADMIN).await;
    assert_eq!(data[0]["model_name"], "marker", "{data}");
    assert_eq!(data[0]["quota"], 1_000_000, "{data}");

    api.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_refusals_and_auth() {
    let api = Api::start().await;
    api.seed(&[log(DAY0 + 10, ALICE)], &identities()).await;
    let base = format!("/api/log/stat/series?start_timestamp={DAY0}");
    for (query, names) in [
        ("&interval=week", "interval"),
        ("&tz=Mars/Olympus", "tz"),
        ("&group_by=model,user,token", "group_by"),
        ("&group_by=ip", "group_by"),
        ("&top=0", "top"),
        ("&top=many", "top"),
        ("&type=abc", "type"),
    ] {
        let path = format!("{base}{query}");
        let (status, body) = api.get(&path, Some(ADMIN)).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["success"], false);
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(names), "{path}: {message}");
    }
    let (status, body) = api.get("/api/log/stat/series", Some(ADMIN)).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("start_timestamp")
    );
    // Minutes over more than the bucket limit: refused before any query.
    let path = format!("{base}&end_timestamp={}&interval=minute", DAY0 + 60 * DAY);
    let (status, body) = api.get(&path, Some(ADMIN)).await;
    assert_eq!(status, 400, "{body}");

    let (status, body) = api.get(&base, None).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = api.get(&base, Some(ALICE)).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["message"], "无权进行此操作，权限不足");
    let (status, body) = api
        .get(
            &format!("/api/log/self/stat/series?start_timestamp={DAY0}"),
            Some(BANNED),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let data = api
        .data(
            &format!(
                "/api/log/self/stat/series/?start_timestamp={DAY0}&end_timestamp={}",
                DAY0 + 60
            ),
            ALICE,
        )
        .await;
    assert_eq!(data["series"][0]["total"]["requests"], 1, "{data}");

    api.finish().await;
}
