//! Acceptance tests of the statistics endpoints (rollup + raw edges == raw scan) and of the
//! staged DELETE (partitions dropped, boundary day deleted, boundary minute rebuilt).

use crate::support::api::*;
use clickhouse::Row;
use logbus_projections::events::LogEvent;
use logbus_query_api::params::LogFilter;
use logbus_query_api::sql::Conditions;
use logbus_query_api::store::stat_plan::quota_queries;
use serde::Deserialize;

/// 2023-11-14 00:00:00 UTC.
const DAY0: i64 = 1_699_920_000;
const DAY: i64 = 86_400;

fn quota_of(events: &[LogEvent], keep: impl Fn(&LogEvent) -> bool) -> i64 {
    events
        .iter()
        .filter(|e| keep(e))
        .map(|e| e.quota.unwrap_or(0))
        .sum()
}

fn in_range(e: &LogEvent, start: i64, end: i64) -> bool {
    (start == 0 || e.created_at >= start) && (end == 0 || e.created_at <= end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stat_quota_equals_a_raw_scan_and_rates_use_the_last_minute() {
    let api = Api::start().await;
    let m0 = DAY0 + 3600;
    let mut events = Vec::new();
    let offsets = [
        0, 1, 30, 59, 60, 61, 119, 120, 185, 240, 300, 359, 3599, 3600, 3601, 3660, 7199, 7200,
        7261, 10_900,
    ];
    for (i, offset) in offsets.iter().enumerate() {
        let who = if i % 3 == 0 { BOB } else { ALICE };
        let mut e = log(m0 + offset, who);
        e.quota = Some(1000 + (i as i64) * 37);
        e.log_type = match i % 5 {
            3 => 5,
            4 => 1,
            _ => 2,
        };
        if i % 2 == 0 {
            e.model_name = Some("claude-3".into());
            e.channel_id = Some(7);
            e.group = Some("vip".into());
        }
        events.push(e);
    }
    let mut other_day = log(DAY0 + DAY + 100, ALICE);
    other_day.quota = Some(5);
    events.push(other_day);
    // Two batches (two inserts, so unmerged rollup rows of one key), then the recent ones.
    api.seed(&events[..7], &identities()).await;
    api.seed(&events[7..], &[]).await;
    let now = now();
    let mut recent = Vec::new();
    for (age, log_type) in [(2, 2), (10, 2), (3, 1), (400, 2)] {
        let mut e = log(now - age, ALICE);
        e.log_type = log_type;
        e.quota = Some(7);
        recent.push(e);
    }
    let mut bob_recent = log(now - 4, BOB);
    bob_recent.quota = Some(11);
    recent.push(bob_recent);
    api.seed(&recent, &[]).await;
    events.extend(recent);

    let raw: i64 = api
        .db
        .client
        .query("SELECT sum(quota) FROM logs WHERE type = 2")
        .fetch_one::<i64>()
        .await
        .unwrap();
    assert_eq!(raw, quota_of(&events, |e| e.log_type == 2));

    let ranges = [
        (m0, m0 + 59),
        (m0 + 1, m0 + 119),
        (m0 + 30, m0 + 185),
        (m0 + 59, m0 + 60),
        (m0 + 61, m0 + 61),
        (m0 + 60, m0 + 119),
        (m0 + 60, m0 + 120),
        (m0 - 1, m0 + 3600),
        (m0, m0 + 2 * DAY),
        (0, m0 + 119),
        (m0 + 30, 0),
        (0, 0),
        (m0 + 200, m0 + 100),
        // Whole hours (answered by the hourly projections when the filters allow it).
        (m0 + 59, m0 + 7200),
        (m0 + 3600, m0 + 7199),
        (m0 + 3599, m0 + 7261),
        (m0 - 3600, m0 + 4 * 3600),
        (m0 + 3600, 0),
        (0, m0 + 7199),
    ];
    type Filter = (&'static str, fn(&LogEvent) -> bool);
    let filters: [Filter; 9] = [
        ("", |e| e.log_type == 2),
        ("&type=5", |e| e.log_type == 5),
        ("&type=1", |e| e.log_type == 1),
        ("&model_name=claude-3", |e| {
            e.log_type == 2 && e.model_name.as_deref() == Some("claude-3")
        }),
        ("&model_name=%25laud%25", |e| {
            e.log_type == 2 && e.model_name.as_deref() == Some("claude-3")
        }),
        ("&username=bob&channel=7", |e| {
            e.log_type == 2 && e.user_id == BOB.id && e.channel_id == Some(7)
        }),
        ("&token_name=alice-token&group=default", |e| {
            e.log_type == 2 && e.user_id == ALICE.id && e.group.as_deref() == Some("default")
        }),
        ("&group=vip&type=0", |e| {
            e.log_type == 2 && e.group.as_deref() == Some("vip")
        }),
        ("&username=ali%25", |e| {
            e.log_type == 2 && e.user_id == ALICE.id
        }),
    ];
    for (start, end) in ranges {
        for (query, keep) in &filters {
            let path = format!("/api/log/stat?start_timestamp={start}&end_timestamp={end}{query}");
            let data = api.data(&path, ADMIN).await;
            let expected = quota_of(&events, |e| keep(e) && in_range(e, start, end));
            assert_eq!(data["quota"], expected, "{path}");
        }
    }
    // Self, over the same ranges: user and type are the keys of stat_user_hour; a model
    // filter is not, and goes through the minute rollup.
    for (start, end) in ranges {
        for (query, keep) in [
            ("", (|e| e.log_type == 2) as fn(&LogEvent) -> bool),
            ("&type=5", |e| e.log_type == 5),
            ("&model_name=claude-3", |e| {
                e.log_type == 2 && e.model_name.as_deref() == Some("claude-3")
            }),
        ] {
            let path =
                format!("/api/log/self/stat?start_timestamp={start}&end_timestamp={end}{query}");
            let data = api.data(&path, ALICE).await;
            let expected = quota_of(&events, |e| {
                keep(e) && e.user_id == ALICE.id && in_range(e, start, end)
            });
            assert_eq!(data["quota"], expected, "{path}");
        }
    }

    // Whole hours really are read from the aggregate projections, and list totals filtered on
    // their keys too.
    let hour_plan = |filter: LogFilter| {
        let api = &api;
        async move {
            let mut conditions = Conditions::default();
            let queries = quota_queries(&filter, &mut conditions);
            let plan = conditions
                .apply(api.db.client.query(&format!("EXPLAIN {}", queries[0])))
                .fetch_all::<String>()
                .await
                .unwrap()
                .join("\n");
            (queries, plan)
        }
    };
    let hours = LogFilter {
        log_type: Some(2),
        start: Some(m0 - 61),
        end: Some(m0 + 7320),
        ..Default::default()
    };
    let (queries, plan) = hour_plan(hours.clone()).await;
    assert_eq!(queries.len(), 3, "hours, minutes, seconds: {queries:?}");
    assert!(plan.contains("(stat_hour)"), "{plan}");
    let (_, plan) = hour_plan(LogFilter {
        user_id: Some(ALICE.id),
        ..hours.clone()
    })
    .await;
    assert!(plan.contains("(stat_user_hour)"), "{plan}");
    let (queries, _) = hour_plan(LogFilter {
        token_name: Some("alice-token".into()),
        ..hours
    })
    .await;
    assert!(
        queries[0].contains("logs_minute"),
        "token_name is no projection key: {queries:?}"
    );
    let plan = api
        .db
        .client
        .query("EXPLAIN SELECT count() FROM logs WHERE user_id = ?")
        .bind(ALICE.id)
        .fetch_all::<String>()
        .await
        .unwrap()
        .join("\n");
    assert!(plan.contains("(stat_user_hour)"), "{plan}");
    let plan = api
        .db
        .client
        .query("EXPLAIN SELECT count() FROM logs WHERE username = 'bob' AND model_name = 'x'")
        .fetch_all::<String>()
        .await
        .unwrap()
        .join("\n");
    assert!(plan.contains("(list_user_model)"), "{plan}");
    assert_projections_match_raw(&api).await;

    // request_id has no rollup column: answered from the raw table.
    let rid = events[4].request_id.clone().unwrap();
    let data = api
        .data(
            &format!(
                "/api/log/stat?request_id={rid}&type=1&start_timestamp={m0}&end_timestamp={}",
                m0 + 3600
            ),
            ADMIN,
        )
        .await;
    assert_eq!(data["quota"], events[4].quota.unwrap());

    // rpm/tpm: the last 60 seconds, same non-time filters, consumption logs by default.
    let data = api
        .data(
            &format!(
                "/api/log/stat?start_timestamp={m0}&end_timestamp={}",
                m0 + 1
            ),
            ADMIN,
        )
        .await;
    assert_eq!(data["rpm"], 3, "{data}");
    assert_eq!(data["tpm"], 90, "{data}");
    let data = api.data("/api/log/stat?type=1", ADMIN).await;
    assert_eq!(data["rpm"], 1, "{data}");
    let data = api.data("/api/log/stat?username=bob", ADMIN).await;
    assert_eq!(data["rpm"], 1, "{data}");
    assert_eq!(data["tpm"], 30, "{data}");
    // A log from the future is not "in the last minute": the window ends at now. Ingest
    // dead-letters such events (outside the created_at window), so it is written directly, as
    // a row stored before that window existed.
    let mut future = log(now + 3600, ALICE);
    future.quota = Some(5);
    crate::support::api::insert_rows(&api.db, std::slice::from_ref(&future), &[]).await;
    events.push(future);
    let data = api
        .data(
            &format!(
                "/api/log/stat?start_timestamp={m0}&end_timestamp={}",
                m0 + 1
            ),
            ADMIN,
        )
        .await;
    assert_eq!(data["rpm"], 3, "{data}");
    assert_eq!(data["tpm"], 90, "{data}");

    // Self: the caller's logs only.
    let data = api.data("/api/log/self/stat", ALICE).await;
    assert_eq!(
        data["quota"],
        quota_of(&events, |e| e.log_type == 2 && e.user_id == ALICE.id)
    );
    assert_eq!(data["rpm"], 2);
    assert_eq!(data["tpm"], 60);
    let data = api.data("/api/log/self/stat?username=alice", BOB).await;
    assert_eq!(
        data["quota"],
        quota_of(&events, |e| e.log_type == 2 && e.user_id == BOB.id),
        "username is ignored on self"
    );
    assert_eq!(data["rpm"], 1);

    // The rollup really serves whole minutes: a marker row in minute m0+60 counts when that
    // minute is wholly inside the range, and not when only part of it is.
    api.db
        .client
        .query(
            "INSERT INTO logs_minute (minute, type, user_id, username, token_id, token_name, \
             model_name, channel_id, `group`, requests, quota, prompt_tokens, completion_tokens) \
             VALUES (?, 2, 99, 'marker', 0, '', 'marker', 0, '', 1, 1000000, 0, 0)",
        )
        .bind(m0 + 60)
        .execute()
        .await
        .unwrap();
    let whole = api
        .data(
            &format!(
                "/api/log/stat?start_timestamp={m0}&end_timestamp={}",
                m0 + 119
            ),
            ADMIN,
        )
        .await;
    assert_eq!(
        whole["quota"],
        quota_of(&events, |e| e.log_type == 2 && in_range(e, m0, m0 + 119)) + 1_000_000
    );
    let partial = api
        .data(
            &format!(
                "/api/log/stat?start_timestamp={}&end_timestamp={}",
                m0 + 61,
                m0 + 119
            ),
            ADMIN,
        )
        .await;
    assert_eq!(
        partial["quota"],
        quota_of(&events, |e| e.log_type == 2
            && in_range(e, m0 + 61, m0 + 119))
    );

    api.finish().await;
}

#[derive(Debug, PartialEq, Row, Deserialize)]
struct MinuteTotals {
    minute: u32,
    requests: u64,
    quota: i64,
}

pub(super) async fn assert_rollup_matches_raw(api: &Api) {
    let rollup = api
        .db
        .client
        .query(
            "SELECT toUnixTimestamp(minute) AS minute, toUInt64(sum(requests)) AS requests, \
             sum(quota) AS quota FROM logs_minute GROUP BY minute \
             HAVING requests != 0 ORDER BY minute",
        )
        .fetch_all::<MinuteTotals>()
        .await
        .unwrap();
    let raw = api
        .db
        .client
        .query(
            "SELECT toUnixTimestamp(toStartOfMinute(created_at)) AS minute, count() AS requests, \
             sum(quota) AS quota FROM logs GROUP BY minute ORDER BY minute",
        )
        .fetch_all::<MinuteTotals>()
        .await
        .unwrap();
    assert_eq!(rollup, raw, "rollups equal the raw rows, minute by minute");
}

/// The hourly projections of `logs` agree with a GROUP BY over the raw rows (projections
/// disabled), key by key.
async fn assert_projections_match_raw(api: &Api) {
    let totals = |sql: &'static str, use_projections: &'static str| async move {
        api.db
            .client
            .query(sql)
            .with_setting("optimize_use_projections", use_projections)
            .fetch_all::<String>()
            .await
            .unwrap()
    };
    for (projection, sql) in [
        (
            "stat_hour",
            "SELECT concat(toString(toStartOfHour(created_at)), ' ', toString(type), ' ', \
             model_name, ' ', toString(channel_id), ' ', `group`, ' ', toString(count()), \
             ' ', toString(sum(quota))) FROM logs \
             GROUP BY toStartOfHour(created_at), type, model_name, channel_id, `group` \
             ORDER BY 1",
        ),
        (
            "stat_user_hour",
            "SELECT concat(toString(user_id), ' ', toString(toStartOfHour(created_at)), ' ', \
             toString(type), ' ', toString(count()), ' ', toString(sum(quota))) FROM logs \
             GROUP BY user_id, toStartOfHour(created_at), type ORDER BY 1",
        ),
        (
            "list_user_model",
            "SELECT concat(username, ' ', model_name, ' ', toString(type), ' ', \
             toString(count())) FROM logs GROUP BY username, model_name, type ORDER BY 1",
        ),
    ] {
        assert_eq!(
            totals(sql, "1").await,
            totals(sql, "0").await,
            "{projection}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_drops_old_days_and_rebuilds_the_boundary_minute() {
    let api = Api::start().await;
    let day3 = DAY0 + 2 * DAY;
    let cut = day3 + 3660 + 30;
    let at = [
        DAY0 + 100,
        DAY0 + 5000,
        DAY0 + DAY + 200,
        day3,
        day3 + 3600,
        day3 + 3670,
        day3 + 3670,
        day3 + 3700,
        day3 + 3719,
        day3 + 7200,
        day3 + DAY + 50,
    ];
    let events: Vec<LogEvent> = at
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut e = log(*t, if i % 2 == 0 { ALICE } else { BOB });
            e.quota = Some(10 + i as i64);
            e
        })
        .collect();
    api.seed(&events, &identities()).await;
    assert_rollup_matches_raw(&api).await;

    let delete = |path: String| {
        let api = &api;
        async move {
            let (status, _, body) = api
                .call(
                    reqwest::Method::DELETE,
                    &path,
                    &[("Authorization", ADMIN.token), ("New-Api-User", "1")],
                )
                .await;
            (status, body)
        }
    };
    for path in [
        "/api/log/",
        "/api/log/?target_timestamp=0",
        "/api/log?target_timestamp=",
    ] {
        let (status, body) = delete(path.to_owned()).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["message"], "target timestamp is required");
    }
    let (status, body) = delete("/api/log/?target_timestamp=-1".into()).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(api.db.count("SELECT count() FROM logs").await, 11);

    let (status, body) = delete(format!("/api/log/?target_timestamp={cut}")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["data"], 7, "rows before the cut");
    api.forget_logs(7);
    assert_eq!(api.db.count("SELECT count() FROM logs").await, 4);
    assert_eq!(
        api.db
            .count(&format!(
                "SELECT count() FROM logs WHERE created_at < {cut}"
            ))
            .await,
        0
    );
    assert_eq!(
        api.db
            .count(
                "SELECT count() FROM system.parts WHERE database = currentDatabase() AND active \
                 AND table IN ('logs', 'logs_minute') AND partition_id IN ('20231114', '20231115')"
            )
            .await,
        0,
        "whole days dropped as partitions"
    );
    assert_rollup_matches_raw(&api).await;
    assert_projections_match_raw(&api).await;
    let remaining: i64 = events[7..].iter().map(|e| e.quota.unwrap()).sum();
    assert_eq!(api.data("/api/log/stat", ADMIN).await["quota"], remaining);
    assert_eq!(api.data("/api/log/", ADMIN).await["total"], 4);
    // Whole hours (from the projections) around the deleted boundary hour.
    let path = format!(
        "/api/log/stat?start_timestamp={}&end_timestamp={}",
        day3 - DAY,
        day3 + DAY + 100
    );
    assert_eq!(api.data(&path, ADMIN).await["quota"], remaining, "{path}");
    let alice: i64 = events[7..]
        .iter()
        .filter(|e| e.user_id == ALICE.id)
        .map(|e| e.quota.unwrap())
        .sum();
    assert_eq!(api.data("/api/log/self/stat", ALICE).await["quota"], alice);
    assert_eq!(
        api.data("/api/log/self", ALICE).await["total"],
        events[7..].iter().filter(|e| e.user_id == ALICE.id).count()
    );

    // Again with the same cut: nothing left to delete, rollups still right (the rebuilt
    // minute is not swallowed as a duplicate insert).
    let (status, body) = delete(format!("/api/log?target_timestamp={cut}")).await;
    assert_eq!((status, body["data"].clone()), (200, 0.into()), "{body}");
    assert_rollup_matches_raw(&api).await;

    // A minute-aligned cut: day3+7200 itself stays.
    let (status, body) = delete(format!("/api/log/?target_timestamp={}", day3 + 7200)).await;
    assert_eq!((status, body["data"].clone()), (200, 2.into()), "{body}");
    api.forget_logs(2);
    assert_rollup_matches_raw(&api).await;
    assert_projections_match_raw(&api).await;

    // Ingest keeps going: new events, including ones in the pruned range, still arrive.
    let mut late = log(day3 + 3690, ALICE);
    late.quota = Some(1);
    let fresh = log(now(), BOB);
    api.seed(&[late, fresh], &[]).await;
    assert_eq!(api.db.count("SELECT count() FROM logs").await, 4);
    assert_rollup_matches_raw(&api).await;

    api.finish().await;
}
