//! ClickHouse unreachable mid-stream and back: no loss, no duplicates, recovered by itself.
//!
//! The outage is simulated with a TCP proxy inside the test ([`Proxy`]): the worker talks to
//! ClickHouse through it. The shared ClickHouse other tests use is never touched.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::eventually;
use crate::support::ingest::{IngestStack, events, fast_producer, publish_events};
use crate::support::proxy::Proxy;
use crate::support::services::InProcessWorker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_outage_mid_stream_loses_nothing_and_duplicates_nothing() {
    let stack = IngestStack::new(3).await;
    let proxy = Proxy::to_clickhouse().await;
    let mut config = stack.config();
    config.clickhouse.url = format!("http://{}", proxy.addr);
    config.batch_max_rows = 2_000;

    let producer = fast_producer();
    let first = events(41, 10_000);
    let second = events(42, 10_000);
    let quota: i64 = first.iter().chain(&second).map(|e| e.quota).sum();
    publish_events(&producer, &stack.logs_topic, &first).await;

    let worker = InProcessWorker::start(config).await;
    stack.wait_for_rows(2_000, Duration::from_secs(120)).await;

    // Outage, while more events arrive.
    proxy.cut();
    publish_events(&producer, &stack.logs_topic, &second).await;
    eventually(
        "the worker retrying against the dead ClickHouse",
        Duration::from_secs(60),
        || async { (proxy.refused.load(Ordering::SeqCst) >= 4).then_some(()) },
    )
    .await;
    let (ready, _) = worker.get("/readyz").await.expect("readyz");
    assert_eq!(ready, 503, "not ready while ClickHouse is down");
    let during = stack.totals().await;
    eprintln!("during the outage: {during:?}");
    assert!(during.rows < 20_000);

    proxy.restore();
    let totals = stack.wait_for_rows(20_000, Duration::from_secs(180)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = stack.totals().await;
    assert_eq!(after, totals);
    after.assert_exact(20_000, quota);

    eventually("ready again", Duration::from_secs(30), || async {
        let (status, _) = worker.get("/readyz").await?;
        (status == 200).then_some(())
    })
    .await;
    let (_, metrics) = worker.get("/metrics").await.expect("metrics");
    assert!(metrics.contains("logbus_ingest_retries_total"), "{metrics}");
    assert!(metrics.contains("logbus_ingest_rows_written_total"));
    assert!(metrics.contains("logbus_ingest_committed_offset"));
    // The failed calls are counted by class, for alerting (docs/operations.md).
    assert!(
        metrics.lines().any(|line| {
            line.starts_with("logbus_ingest_clickhouse_errors_total{")
                && line.contains("class=\"transient\"")
        }),
        "{metrics}"
    );
    assert!(metrics.contains("logbus_ingest_last_commit_timestamp_seconds"));
    assert!(metrics.contains("logbus_ingest_last_flush_timestamp_seconds{topic=\"logs\"}"));

    worker.stop().await.expect("clean stop");
    drop(proxy);
    stack.finish().await;
}
