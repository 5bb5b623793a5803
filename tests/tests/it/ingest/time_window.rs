//! `created_at` across many days: a batch whose rows span more days than ClickHouse's
//! `max_partitions_per_insert_block` (100) is refused as a whole, for ever; the worker splits
//! it into blocks over fewer days instead of retrying it (it used to stall the partition).

use std::time::Duration;

use crate::support::api::now;
use crate::support::ingest::{IngestStack, fast_producer};
use crate::support::services::InProcessWorker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_more_days_than_partitions_per_insert_lands_in_smaller_blocks() {
    let stack = IngestStack::new(1).await;
    let producer = fast_producer();
    // 250 events, one per day over the last 250 days, in one message: one batch, 250
    // partitions of `logs` (and of `logs_minute`).
    let days = 250i64;
    let events: Vec<serde_json::Value> = (0..days)
        .map(|day| {
            serde_json::json!({
                "event_id": uuid::Uuid::new_v4(),
                "created_at": now() - day * 86_400,
                "type": 2,
                "user_id": 7,
                "quota": day + 1,
            })
        })
        .collect();
    let payload = serde_json::to_vec(&events).expect("serialize");
    crate::support::publish(&producer, &stack.logs_topic, &[("7".to_owned(), payload)]).await;

    let worker = InProcessWorker::start(stack.config()).await;
    let totals = stack
        .wait_for_rows(days as u64, Duration::from_secs(90))
        .await;
    assert_eq!(totals.rows, days as u64);
    assert_eq!(totals.quota, days * (days + 1) / 2);
    assert_eq!(totals.rollup_requests, days as u64);
    assert_eq!(totals.rollup_quota, days * (days + 1) / 2);
    worker.stop().await.expect("clean stop");
    stack.finish().await;
}
