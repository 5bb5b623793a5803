//! The worker as a real process, killed at several points (abort right after an insert and
//! before its commit; SIGKILL mid-stream) and stopped with SIGTERM under load: every event
//! lands exactly once, in the raw table and in the rollup.

use std::time::Duration;

use crate::support::Scratch;
use crate::support::ingest::{IngestStack, events, fast_producer, publish_events};
use crate::support::services::WorkerProcess;
use clickhouse::Row;
use nix::sys::signal::Signal;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Deserialize;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_at_several_points_leave_every_event_exactly_once() {
    let _heavy = crate::support::heavy_test().await;
    let stack = IngestStack::new(3).await;
    let scratch = Scratch::new("crash");
    let log = scratch.path().join("worker.log");
    let mut config = stack.config();
    config.batch_max_rows = 2_000;
    let producer = fast_producer();
    let first = events(21, 24_000);
    let second = events(22, 12_000);
    let quota: i64 = first.iter().chain(&second).map(|e| e.quota).sum();
    let total = (first.len() + second.len()) as u64;
    publish_events(&producer, &stack.logs_topic, &first).await;

    // 1. Abort right after the 3rd successful insert, before its commit; then after the 4th
    //    insert of the next run (the replayed batch counts as an insert too).
    for point in ["after-insert:3", "after-insert:4"] {
        let mut worker = WorkerProcess::spawn(&config, Some(point), &log).await;
        let status = worker.wait_exit(Duration::from_secs(120)).await;
        assert!(
            !status.success(),
            "{point}: the fail point aborts ({status})"
        );
        eprintln!("{point}: {:?}", stack.totals().await);
    }

    // 2. SIGKILL mid-stream, while more events are being published.
    let mut worker = WorkerProcess::spawn(&config, None, &log).await;
    let publishing = {
        let topic = stack.logs_topic.clone();
        tokio::spawn(async move {
            let producer = fast_producer();
            for chunk in second.chunks(2_000) {
                publish_events(&producer, &topic, chunk).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let before_kill = stack.totals().await.rows;
    stack
        .wait_for_rows(before_kill + 4_000, Duration::from_secs(120))
        .await;
    worker.signal(Signal::SIGKILL);
    let status = worker.wait_exit(Duration::from_secs(10)).await;
    assert!(!status.success());
    eprintln!("after SIGKILL: {:?}", stack.totals().await);
    publishing.await.expect("publisher");

    // 3. Restart and let it finish: exactly once.
    let mut worker = WorkerProcess::spawn(&config, None, &log).await;
    let totals = stack.wait_for_rows(total, Duration::from_secs(180)).await;
    // Let any late (duplicate) write show up before checking.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.totals().await.assert_exact(total, quota);
    totals.assert_exact(total, quota);
    // Replays were cut at the recorded boundaries: no two intents start at the same offset
    // with different ends, and no intents overlap.
    let conflicting = stack
        .db
        .count(
            "SELECT count() FROM (
                SELECT partition, first_offset FROM ingest_batches
                GROUP BY partition, first_offset HAVING uniqExact(last_offset) > 1)",
        )
        .await;
    assert_eq!(conflicting, 0, "replayed batches kept their boundaries");
    let overlapping = stack
        .db
        .count(
            "SELECT count() FROM (
                SELECT partition, first_offset, last_offset,
                       lagInFrame(last_offset, 1, -1) OVER (PARTITION BY partition
                           ORDER BY first_offset ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS prev_last
                FROM (SELECT DISTINCT partition, first_offset, last_offset FROM ingest_batches))
             WHERE first_offset <= prev_last",
        )
        .await;
    assert_eq!(overlapping, 0, "no two recorded batches overlap");
    worker.signal(Signal::SIGKILL);
    let _ = worker.wait_exit(Duration::from_secs(10)).await;
    stack.finish().await;
}

#[derive(Debug, Row, Deserialize)]
struct LastIntent {
    partition: i32,
    last_offset: i64,
}

fn committed_offsets(stack: &IngestStack) -> Vec<(i32, i64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", crate::support::kafka_brokers())
        .set("group.id", &stack.group_id)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    for partition in 0..stack.partitions {
        list.add_partition(&stack.logs_topic, partition);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .map(|e| {
            let offset = match e.offset() {
                Offset::Offset(o) => o,
                _ => -1,
            };
            (e.partition(), offset)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_zero_with_everything_committed() {
    let _heavy = crate::support::heavy_test().await;
    let stack = IngestStack::new(3).await;
    let scratch = Scratch::new("sigterm");
    let log = scratch.path().join("worker.log");
    let mut config = stack.config();
    config.batch_max_rows = 2_000;
    let all = events(31, 30_000);
    let quota: i64 = all.iter().map(|e| e.quota).sum();
    let total = all.len() as u64;

    let mut worker = WorkerProcess::spawn(&config, None, &log).await;
    let publishing = {
        let topic = stack.logs_topic.clone();
        tokio::spawn(async move {
            let producer = fast_producer();
            for chunk in all.chunks(1_500) {
                publish_events(&producer, &topic, chunk).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    stack.wait_for_rows(6_000, Duration::from_secs(120)).await;
    worker.signal(Signal::SIGTERM);
    let status = worker.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success(), "SIGTERM exits 0, got {status}");

    // Everything inserted was committed: each partition's committed offset is one past the
    // last recorded batch.
    let stored = stack.totals().await;
    let last_intents = stack
        .db
        .client
        .query("SELECT partition, max(last_offset) AS last_offset FROM ingest_batches GROUP BY partition")
        .fetch_all::<LastIntent>()
        .await
        .expect("intents");
    let committed = committed_offsets(&stack);
    for intent in &last_intents {
        let offset = committed
            .iter()
            .find(|(p, _)| *p == intent.partition)
            .map(|(_, o)| *o);
        assert_eq!(
            offset,
            Some(intent.last_offset + 1),
            "partition {} committed up to its last inserted batch",
            intent.partition
        );
    }
    eprintln!("after SIGTERM: {stored:?}, committed {committed:?}");
    publishing.await.expect("publisher");

    // Restart: nothing duplicated, nothing lost.
    let mut worker = WorkerProcess::spawn(&config, None, &log).await;
    stack.wait_for_rows(total, Duration::from_secs(180)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stack.totals().await.assert_exact(total, quota);
    worker.signal(Signal::SIGTERM);
    let status = worker.wait_exit(Duration::from_secs(30)).await;
    assert!(status.success());
    stack.finish().await;
}
