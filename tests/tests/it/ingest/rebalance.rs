//! Rebalances under load: a second worker joins the group mid-stream (partitions move to it),
//! then leaves again (they move back); every event still lands exactly once.
//!
//! The worker that leaves is the group's follower; the scale-out test (`ingest::scale_out`)
//! makes the leader leave and be killed.

use std::time::Duration;

use crate::support::eventually;
use crate::support::ingest::{IngestStack, events, fast_producer, publish_events};
use crate::support::services::InProcessWorker;

/// Partition assignments seen by every worker of this process (the metrics recorder is
/// process-wide), as `worker` reports them.
async fn assignments(worker: &InProcessWorker) -> Option<u64> {
    let assigned = worker
        .metric("logbus_ingest_rebalances_total{event=\"assign\"}")
        .await?;
    Some(assigned as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_joining_and_leaving_mid_stream_keep_every_event_exactly_once() {
    let stack = IngestStack::new(4).await;
    let mut config = stack.config();
    config.batch_max_rows = 1_000;
    let all = events(51, 24_000);
    let quota: i64 = all.iter().map(|e| e.quota).sum();
    let total = all.len() as u64;
    let publishing = {
        let topic = stack.logs_topic.clone();
        tokio::spawn(async move {
            let producer = fast_producer();
            for chunk in all.chunks(1_000) {
                publish_events(&producer, &topic, chunk).await;
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
        })
    };

    let first = InProcessWorker::start(config.clone()).await;
    stack.wait_for_rows(2_000, Duration::from_secs(120)).await;
    let initial = assignments(&first).await.expect("metrics");
    let second = InProcessWorker::start(config.clone()).await;
    // The group rebalanced: partitions were assigned again (some to the second worker).
    eventually(
        "a rebalance onto two workers",
        Duration::from_secs(60),
        || async { assignments(&first).await.filter(|n| *n > initial) },
    )
    .await;
    let before = stack.totals().await.rows;
    stack
        .wait_for_rows(before + 2_000, Duration::from_secs(120))
        .await;
    second.stop().await.expect("second worker stops cleanly");
    publishing.await.expect("publisher");

    let totals = stack.wait_for_rows(total, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = stack.totals().await;
    assert_eq!(after, totals);
    after.assert_exact(total, quota);
    first.stop().await.expect("first worker stops cleanly");
    stack.finish().await;
}
