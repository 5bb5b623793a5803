//! Consumer lag as the worker exports it: while the worker cannot write (ClickHouse cut off
//! behind a proxy, so nothing more is committed), `logbus_ingest_consumer_lag_total` grows by
//! exactly what was produced; once ClickHouse is back the worker catches up and the lag
//! returns to 0, with every event stored exactly once.

use std::time::Duration;

use crate::support::eventually;
use crate::support::ingest::{IngestStack, events, fast_producer, publish_events};
use crate::support::proxy::Proxy;
use crate::support::services::InProcessWorker;

/// The lag of `topic` as the worker exports it: the sum of its per-partition gauges, once all
/// `partitions` are exported. (The recorder is process-wide and other tests run workers in
/// this process too, so the per-worker total gauge is read only by single-worker processes;
/// the per-partition gauges are labelled by topic, which is this test's own.)
async fn lag(worker: &InProcessWorker, topic: &str, partitions: usize) -> Option<f64> {
    let (_, text) = worker.get("/metrics").await?;
    let series: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("logbus_ingest_consumer_lag{"))
        .filter(|labels| labels.contains(&format!("topic=\"{topic}\"")))
        .collect();
    let values: Vec<f64> = series
        .iter()
        .filter_map(|line| line.rsplit_once(' ')?.1.trim().parse().ok())
        .collect();
    (values.len() == partitions).then(|| values.iter().sum())
}

async fn wait_for_lag(worker: &InProcessWorker, stack: &IngestStack, what: &str, want: f64) {
    let partitions = usize::try_from(stack.partitions).expect("partitions");
    eventually(what, Duration::from_secs(90), || async {
        (lag(worker, &stack.logs_topic, partitions).await? == want).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_grows_by_what_was_produced_while_writes_stall_and_returns_to_zero() {
    let stack = IngestStack::new(3).await;
    let proxy = Proxy::to_clickhouse().await;
    let mut config = stack.config();
    config.clickhouse.url = format!("http://{}", proxy.addr);
    config.batch_max_rows = 1_000;
    let producer = fast_producer();
    let first = events(81, 3_000);
    let second = events(82, 2_500);
    let quota: i64 = first.iter().chain(&second).map(|e| e.quota).sum();
    let total = (first.len() + second.len()) as u64;

    let worker = InProcessWorker::start(config).await;
    publish_events(&producer, &stack.logs_topic, &first).await;
    stack
        .wait_for_rows(first.len() as u64, Duration::from_secs(90))
        .await;
    wait_for_lag(
        &worker,
        &stack,
        "lag 0 once the first events are committed",
        0.0,
    )
    .await;

    // Writes stall: every event produced now stays uncommitted, one message each.
    proxy.cut();
    publish_events(&producer, &stack.logs_topic, &second).await;
    wait_for_lag(
        &worker,
        &stack,
        "lag equal to the events produced while writes stall",
        second.len() as f64,
    )
    .await;
    stack
        .totals()
        .await
        .assert_exact(first.len() as u64, first.iter().map(|e| e.quota).sum());

    proxy.restore();
    stack.wait_for_rows(total, Duration::from_secs(120)).await;
    wait_for_lag(&worker, &stack, "lag back to 0 after catching up", 0.0).await;
    stack.totals().await.assert_exact(total, quota);
    worker.stop().await.expect("the worker stops cleanly");
    stack.finish().await;
}
