//! The guards of the retention delete: recent and future targets refused unless confirmed
//! (the future always), the dry run, the lock shared by API replicas (409), and a delete that
//! fails part-way reporting what it did and being completed by repeating it.

use serde_json::Value;

use super::stat::assert_rollup_matches_raw;
use crate::support::api::*;

/// 2023-11-14 00:00:00 UTC.
const DAY0: i64 = 1_699_920_000;
const DAY: i64 = 86_400;

async fn delete(api: &Api, query: &str) -> (u16, Value) {
    let (status, _, body) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/api/log/?{query}"),
            &[
                ("Authorization", ADMIN.token),
                ("New-Api-User", "1"),
                ("Accept-Language", "en"),
            ],
        )
        .await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_refuses_recent_and_future_targets_unless_confirmed_and_dry_runs_count() {
    let api = Api::start().await;
    let now = now();
    let mut events: Vec<_> = [DAY0 + 10, DAY0 + DAY + 10, DAY0 + DAY + 70]
        .iter()
        .map(|t| log(*t, ALICE))
        .collect();
    // Today's logs: an hour, ten minutes and a few seconds old.
    events.extend(
        [now - 3600, now - 600, now - 5]
            .iter()
            .map(|t| log(*t, BOB)),
    );
    api.seed(&events, &identities()).await;
    let total = || api.db.count("SELECT count() FROM logs");
    assert_eq!(total().await, 6);

    // A typo into the future deletes nothing, confirmed or not.
    for query in [
        format!("target_timestamp={}", now + 3600),
        format!("target_timestamp={}&confirm=true", now + 3600),
        "target_timestamp=4294967295&confirm=1".to_owned(),
        format!("target_timestamp={}&dry_run=true", now + 3600),
    ] {
        let (status, body) = delete(&api, &query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["success"], false);
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("in the future"), "{query}: {message}");
    }
    // Within the default margin of a day: refused without confirm=true, and said so.
    let (status, body) = delete(&api, &format!("target_timestamp={}", now - 60)).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("confirm=true"),
        "{body}"
    );
    let (status, body) = delete(
        &api,
        &format!("target_timestamp={}&confirm=maybe", now - 60),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(total().await, 6, "nothing deleted by a refusal");

    // Dry runs count without deleting, also within the margin.
    let (status, body) = delete(&api, &format!("target_timestamp={}&dry_run=true", now - 60)).await;
    assert_eq!((status, body["data"].clone()), (200, 5.into()), "{body}");
    let (status, body) = delete(
        &api,
        &format!("target_timestamp={}&dry_run=1", DAY0 + DAY + 60),
    )
    .await;
    assert_eq!((status, body["data"].clone()), (200, 2.into()), "{body}");
    assert_eq!(total().await, 6, "nothing deleted by a dry run");

    // new-api's request for a past target keeps working unchanged.
    let (status, body) = delete(&api, &format!("target_timestamp={}", DAY0 + DAY + 60)).await;
    assert_eq!((status, body["data"].clone()), (200, 2.into()), "{body}");
    assert_eq!(body["message"], "");
    api.forget_logs(2);
    // Confirmed, a recent cut deletes what is older than it and keeps the rest.
    let (status, body) = delete(&api, &format!("target_timestamp={}&confirm=true", now - 60)).await;
    assert_eq!((status, body["data"].clone()), (200, 3.into()), "{body}");
    api.forget_logs(3);
    assert_eq!(total().await, 1);
    assert_rollup_matches_raw(&api).await;
    api.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_is_refused_while_another_replica_holds_the_lock() {
    let api = Api::start().await;
    api.seed(
        &[log(DAY0 + 10, ALICE), log(DAY0 + DAY, ALICE)],
        &identities(),
    )
    .await;
    // What another replica's running delete has written: a live claim.
    let claim = |owner: &str, seq: u32, expires: &str, released: bool| {
        format!(
            "INSERT INTO retention_lock (owner, seq, expires_at, released, target, admin_id) \
             SELECT toUUID('{owner}'), {seq}, {expires}, {released}, toDateTime({DAY0}), 77"
        )
    };
    let other = "00000000-0000-4000-8000-000000000001";
    let lapsed = "00000000-0000-4000-8000-000000000002";
    for sql in [
        claim(other, 0, "now64(3) + INTERVAL 1 HOUR", false),
        claim(lapsed, 0, "now64(3) - INTERVAL 1 SECOND", false),
    ] {
        api.db.client.query(&sql).execute().await.unwrap();
    }
    let (status, body) = delete(&api, &format!("target_timestamp={}", DAY0 + 100)).await;
    assert_eq!(status, 409, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("target_timestamp {DAY0}")) && message.contains("admin 77"),
        "{message}"
    );
    assert_eq!(api.db.count("SELECT count() FROM logs").await, 2);
    // The refused delete withdrew its own claim: once the other releases, a delete runs.
    api.db
        .client
        .query(&claim(other, 1, "now64(3) + INTERVAL 1 HOUR", true))
        .execute()
        .await
        .unwrap();
    let (status, body) = delete(&api, &format!("target_timestamp={}", DAY0 + 100)).await;
    assert_eq!((status, body["data"].clone()), (200, 1.into()), "{body}");
    api.forget_logs(1);
    let live = "SELECT count() FROM (SELECT owner FROM retention_lock GROUP BY owner \
                HAVING NOT argMax(released, seq) AND argMax(expires_at, seq) > now64(3))";
    assert_eq!(
        api.db.count(live).await,
        0,
        "every claim released or lapsed"
    );
    api.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_that_fails_part_way_says_what_it_left_and_a_repeat_completes_it() {
    let api = Api::start().await;
    let cut = DAY0 + DAY + 3690;
    let events: Vec<_> = [
        DAY0 + 10,
        DAY0 + DAY + 100,
        DAY0 + DAY + 3670,
        DAY0 + DAY + 3700,
        DAY0 + DAY + 7200,
    ]
    .iter()
    .map(|t| log(*t, ALICE))
    .collect();
    api.seed(&events, &identities()).await;
    // The rollup refuses inserts (the rebuild of the cut minute) but not drops and deletes.
    let constraint = |sql: &'static str| {
        let client = api.db.client.clone();
        async move { client.query(sql).execute().await.unwrap() }
    };
    constraint("ALTER TABLE logs_minute ADD CONSTRAINT refuse_rebuild CHECK requests = 0").await;
    let (status, body) = delete(&api, &format!("target_timestamp={cut}")).await;
    assert_eq!(status, 500, "{body}");
    let message = body["message"].as_str().unwrap();
    let minute = cut - 30;
    for part in [
        "Done: logs DROP PARTITION 20231114; logs_minute DROP PARTITION 20231114",
        &format!("Failed: logs_minute REBUILD minute {minute}"),
        &format!("logs_minute may disagree with the logs of minute {minute}"),
        "Repeating the same delete completes it",
    ] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    assert!(
        !message.contains("VIOLATED"),
        "no ClickHouse details: {message}"
    );
    assert_eq!(
        api.db
            .count(&format!(
                "SELECT count() FROM logs WHERE created_at < {cut}"
            ))
            .await,
        0,
        "the raw rows before the cut are gone"
    );
    constraint("ALTER TABLE logs_minute DROP CONSTRAINT refuse_rebuild").await;
    let (status, body) = delete(&api, &format!("target_timestamp={cut}")).await;
    assert_eq!((status, body["data"].clone()), (200, 0.into()), "{body}");
    api.forget_logs(3);
    assert_rollup_matches_raw(&api).await;
    api.finish().await;
}
