//! Acceptance tests of new-api's dashboard endpoints (`/api/data/`, `/api/data/users`,
//! `/api/data/self`): hourly rows equal to the raw logs, new-api's keys, `[]` when empty, the
//! 30-day refusal and the auth of the log endpoints.

use std::collections::BTreeMap;

use crate::support::api::*;
use clickhouse::Row;
use logbus_projections::events::LogEvent;
use logbus_query_api::store::dashboard::{DataGrouping, data_query, hour_window};
use serde::Deserialize;
use serde_json::Value;

/// 2023-11-14 00:00:00 UTC.
const DAY0: i64 = 1_699_920_000;
const HOUR: i64 = 3_600;

/// (hour, user_id, username, model) -> (count, quota, token_used), new-api's way: consume
/// logs only, token_used = prompt + completion.
type Buckets = BTreeMap<(i64, i64, String, String), (u64, i64, i64)>;

fn buckets(events: &[LogEvent], key: impl Fn(&LogEvent) -> (i64, String, String)) -> Buckets {
    let mut out = Buckets::new();
    for e in events.iter().filter(|e| e.log_type == 2) {
        let (user_id, username, model) = key(e);
        let hour = e.created_at - e.created_at % HOUR;
        let sums = out.entry((hour, user_id, username, model)).or_default();
        sums.0 += 1;
        sums.1 += e.quota.unwrap_or(0);
        sums.2 += e.prompt_tokens.unwrap_or(0) + e.completion_tokens.unwrap_or(0);
    }
    out
}

/// The buckets whose start lies in `[start, end]`.
fn within(buckets: &Buckets, start: i64, end: i64) -> Buckets {
    buckets
        .iter()
        .filter(|((hour, ..), _)| *hour >= start && *hour <= end)
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// The answer's rows as buckets, checking that every row has new-api's eight keys in order
/// and that rows ascend by hour.
fn answered(data: &Value) -> Buckets {
    let rows = data.as_array().expect("data is an array");
    let mut last_hour = 0;
    let mut out = Buckets::new();
    for row in rows {
        let keys: Vec<&str> = row
            .as_object()
            .expect("row")
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        let mut expected = vec![
            "id",
            "user_id",
            "username",
            "model_name",
            "created_at",
            "token_used",
            "count",
            "quota",
        ];
        expected.sort_unstable();
        assert_eq!(sorted, expected, "{row}");
        let hour = row["created_at"].as_i64().unwrap();
        assert_eq!(hour % HOUR, 0, "hour buckets: {row}");
        assert!(hour >= last_hour, "ascending by hour: {data}");
        last_hour = hour;
        let key = (
            hour,
            row["user_id"].as_i64().unwrap(),
            row["username"].as_str().unwrap().to_owned(),
            row["model_name"].as_str().unwrap().to_owned(),
        );
        let sums = (
            row["count"].as_u64().unwrap(),
            row["quota"].as_i64().unwrap(),
            row["token_used"].as_i64().unwrap(),
        );
        assert!(
            out.insert(key, sums).is_none(),
            "one row per bucket: {data}"
        );
    }
    out
}

fn ids(data: &Value) -> Vec<u64> {
    data.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect()
}

#[derive(Debug, Row, Deserialize)]
struct RawBucket {
    hour: u32,
    model_name: String,
    count: u64,
    quota: i64,
    token_used: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_rows_equal_the_raw_logs_per_hour() {
    let api = Api::start().await;
    let h0 = DAY0 + 5 * HOUR;
    let mut events = Vec::new();
    let offsets = [
        0, 1, 59, 61, 1800, 3599, 3600, 3661, 7000, 7200, 9000, 10_799, 10_800,
    ];
    for (i, offset) in offsets.iter().enumerate() {
        let who = [ALICE, BOB, ADMIN][i % 3];
        let mut e = log(h0 + offset, who);
        e.quota = Some(100 + i as i64 * 13);
        e.prompt_tokens = Some(10 + i as i64);
        e.completion_tokens = Some(i as i64 * 3);
        if i % 2 == 1 {
            e.model_name = Some("claude-3".into());
        }
        // Error and top-up logs are not consumption: new-api does not count them.
        if i % 5 == 4 {
            e.log_type = if i % 2 == 0 { 5 } else { 1 };
        }
        events.push(e);
    }
    // Two inserts, so the rollup holds unmerged rows of one key.
    api.seed(&events[..6], &identities()).await;
    api.seed(&events[6..], &[]).await;

    let per_model = buckets(&events, |e| {
        (0, String::new(), e.model_name.clone().unwrap_or_default())
    });
    let per_user_model = buckets(&events, |e| {
        (
            e.user_id,
            e.username.clone().unwrap_or_default(),
            e.model_name.clone().unwrap_or_default(),
        )
    });
    let per_user = buckets(&events, |e| {
        (0, e.username.clone().unwrap_or_default(), String::new())
    });

    // The raw table, grouped as new-api's flush groups, equals the expectation: the
    // endpoints are compared against what the logs say.
    let raw = api
        .db
        .client
        .query(
            "SELECT toUInt32(toStartOfHour(created_at)) AS hour, toString(model_name) AS model_name, \
             count() AS count, sum(quota) AS quota, \
             sum(prompt_tokens + completion_tokens) AS token_used \
             FROM logs WHERE type = 2 GROUP BY hour, model_name",
        )
        .fetch_all::<RawBucket>()
        .await
        .unwrap();
    let raw: Buckets = raw
        .into_iter()
        .map(|r| {
            (
                (i64::from(r.hour), 0, String::new(), r.model_name),
                (r.count, r.quota, r.token_used),
            )
        })
        .collect();
    assert_eq!(raw, per_model);

    // Bucket starts are compared with the range, as new-api does: a start inside an hour
    // drops that hour's bucket, an end inside one keeps it whole.
    let ranges = [
        (h0, h0 + 3 * HOUR),
        (h0 + 1, h0 + 2 * HOUR),
        (h0 - HOUR, h0 + HOUR + 1),
        (h0, h0),
        (0, h0 + 10 * HOUR),
    ];
    for (start, end) in ranges {
        let q = format!("start_timestamp={start}&end_timestamp={end}");
        for path in [format!("/api/data/?{q}"), format!("/api/data?{q}")] {
            let data = api.data(&path, ADMIN).await;
            assert_eq!(answered(&data), within(&per_model, start, end), "{path}");
            assert!(
                ids(&data).iter().all(|id| *id == 0),
                "aggregated rows have id 0"
            );
        }
        let path = format!("/api/data/?{q}&username=alice");
        let data = api.data(&path, ADMIN).await;
        let alice: Buckets = within(&per_user_model, start, end)
            .into_iter()
            .filter(|((_, user, ..), _)| *user == ALICE.id)
            .collect();
        assert_eq!(answered(&data), alice, "{path}");
        let n = data.as_array().unwrap().len() as u64;
        assert_eq!(ids(&data), (1..=n).collect::<Vec<_>>(), "{path}");
        for path in [
            format!("/api/data/users?{q}"),
            format!("/api/data/users/?{q}"),
        ] {
            let data = api.data(&path, ADMIN).await;
            assert_eq!(answered(&data), within(&per_user, start, end), "{path}");
        }
        // (The self view refuses ranges over 30 days: tested below.)
        let self_paths = if end - start <= 2_592_000 {
            vec![
                format!("/api/data/self?{q}"),
                format!("/api/data/self/?{q}"),
            ]
        } else {
            vec![]
        };
        for path in self_paths {
            let data = api.data(&path, BOB).await;
            let bob: Buckets = within(&per_user_model, start, end)
                .into_iter()
                .filter(|((_, user, ..), _)| *user == BOB.id)
                .collect();
            assert!(!bob.is_empty(), "{path}: the case is not vacuous");
            assert_eq!(answered(&data), bob, "{path}");
        }
    }

    // Live: a log ingested now is in its bucket at once, no flush interval.
    let mut late = log(h0 + 120, ALICE);
    late.quota = Some(7);
    api.seed(std::slice::from_ref(&late), &[]).await;
    events.push(late);
    let q = format!("start_timestamp={h0}&end_timestamp={}", h0 + 3 * HOUR);
    let data = api.data(&format!("/api/data/self?{q}"), ALICE).await;
    let alice: Buckets = within(
        &buckets(&events, |e| {
            (
                e.user_id,
                e.username.clone().unwrap_or_default(),
                e.model_name.clone().unwrap_or_default(),
            )
        }),
        h0,
        h0 + 3 * HOUR,
    )
    .into_iter()
    .filter(|((_, user, ..), _)| *user == ALICE.id)
    .collect();
    assert_eq!(answered(&data), alice);

    // Empty answers are `[]`: no logs in range, an unknown username, new-api's absent end.
    for path in [
        format!(
            "/api/data/?start_timestamp={}&end_timestamp={}",
            DAY0,
            DAY0 + HOUR
        ),
        format!("/api/data/?{q}&username=nobody"),
        "/api/data/?start_timestamp=1699938000".to_owned(),
        format!(
            "/api/data/users?start_timestamp={}&end_timestamp={}",
            h0 + 1,
            h0 + 2
        ),
        format!(
            "/api/data/self?start_timestamp={}&end_timestamp={}",
            DAY0,
            DAY0 + HOUR
        ),
    ] {
        let caller = if path.starts_with("/api/data/self") {
            ALICE
        } else {
            ADMIN
        };
        let (status, body) = api.get(&path, Some(caller)).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["data"], serde_json::json!([]), "{path}: {body}");
    }

    // The dashboards are read from the hourly projections of the rollup (migration 12), and
    // still agree once merges have summed the rollup's rows and rebuilt the projections.
    let (first, last) = hour_window(h0, h0 + 3 * HOUR).expect("whole hours");
    // (Which of the two answers the per-model rows is ClickHouse's estimate: on rows this few,
    // either; on a gateway's, data_model_hour, which has a row per model and hour.)
    for (grouping, projection) in [
        (DataGrouping::User(ALICE.id), "(data_user_hour)"),
        (DataGrouping::Username("alice".into()), "(data_user_hour)"),
        (DataGrouping::Users, "(data_user_hour)"),
        (DataGrouping::Models, "(data_"),
    ] {
        let (sql, conditions) = data_query(&grouping, first, last);
        let plan = conditions
            .apply(api.db.client.query(&format!("EXPLAIN {sql}")))
            .fetch_all::<String>()
            .await
            .unwrap()
            .join("\n");
        assert!(plan.contains(projection), "{grouping:?}: {plan}");
    }
    let admin_paths = [
        format!("/api/data/?{q}"),
        format!("/api/data/users?{q}"),
        format!("/api/data/?{q}&username=alice"),
    ];
    let mut before = Vec::new();
    for path in &admin_paths {
        before.push(api.data(path, ADMIN).await);
    }
    api.db
        .client
        .query("OPTIMIZE TABLE logs_minute FINAL")
        .execute()
        .await
        .unwrap();
    for (path, expected) in admin_paths.iter().zip(before) {
        assert_eq!(
            api.data(path, ADMIN).await,
            expected,
            "{path} after merging"
        );
    }
    assert_eq!(
        answered(&api.data(&format!("/api/data/self?{q}"), ALICE).await),
        alice,
        "self after merging"
    );

    api.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_refusals_and_auth() {
    let api = Api::start().await;
    api.seed(&[log(DAY0 + 10, ALICE)], &identities()).await;
    let get = |path: String, headers: Vec<(&'static str, String)>| {
        let api = &api;
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (status, _, body) = api.call(reqwest::Method::GET, &path, &headers).await;
            assert_eq!(body["success"], false, "{path}: {body}");
            (status, body["message"].as_str().unwrap().to_owned())
        }
    };
    let h = |caller: Caller| {
        vec![
            ("Authorization", caller.token.to_owned()),
            ("New-Api-User", caller.id.to_string()),
        ]
    };

    // new-api's 30-day limit on the self view, with its message; exactly 30 days passes.
    let month = 2_592_000;
    assert_eq!(
        get(
            format!(
                "/api/data/self?start_timestamp={DAY0}&end_timestamp={}",
                DAY0 + month + 1
            ),
            h(ALICE)
        )
        .await,
        (400, "时间跨度不能超过 1 个月".into())
    );
    let data = api
        .data(
            &format!(
                "/api/data/self?start_timestamp={DAY0}&end_timestamp={}",
                DAY0 + month
            ),
            ALICE,
        )
        .await;
    assert_eq!(data.as_array().unwrap().len(), 1, "{data}");
    // The admin views have no such limit (as in new-api).
    let data = api
        .data(
            &format!(
                "/api/data/?start_timestamp=0&end_timestamp={}",
                DAY0 + month * 5
            ),
            ADMIN,
        )
        .await;
    assert_eq!(data.as_array().unwrap().len(), 1, "{data}");

    // A timestamp that is not an integer is a 400 naming it (new-api silently reads 0).
    let (status, message) = get("/api/data/?start_timestamp=abc".into(), h(ADMIN)).await;
    assert_eq!(status, 400);
    assert!(message.contains("start_timestamp"), "{message}");

    // Auth as for the log endpoints.
    for path in ["/api/data/", "/api/data/users", "/api/data/self"] {
        assert_eq!(
            get(path.into(), vec![]).await,
            (401, "无权进行此操作，未登录且未提供 access token".into()),
            "{path}"
        );
        assert_eq!(
            get(
                path.into(),
                vec![
                    ("Authorization", "wrong-token".into()),
                    ("New-Api-User", "2".into())
                ]
            )
            .await,
            (401, "无权进行此操作，access token 无效".into()),
            "{path}"
        );
        assert_eq!(
            get(path.into(), h(BANNED)).await,
            (403, "用户已被封禁".into()),
            "{path}"
        );
    }
    for path in [
        "/api/data/",
        "/api/data",
        "/api/data/users",
        "/api/data/users/",
    ] {
        assert_eq!(
            get(path.into(), h(ALICE)).await,
            (403, "无权进行此操作，权限不足".into()),
            "{path}"
        );
    }

    api.finish().await;
}
