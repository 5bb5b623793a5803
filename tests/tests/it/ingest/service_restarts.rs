//! The services around the worker really stopped mid-stream, not simulated by a proxy:
//!
//! * a private ClickHouse front (`devstack/chfront`, its own data folder and port) is stopped
//!   with SIGTERM, and later with SIGKILL while inserts are in flight, kept down for a few
//!   seconds while events keep arriving, and started again on the same port and data;
//! * a private Apache Kafka broker (its own ports and log directories) is SIGKILLed mid-stream
//!   and restarted on the same data.
//!
//! In every case the worker (a real `logbus-ingest-under-test` process, never restarted) must
//! recover by itself, and every produced event must land exactly once in `logs` and in the
//! `logs_minute` rollup. The private processes are killed by their pid when the test ends,
//! whatever happens.

use std::time::Duration;

use crate::support::ingest::{Event, IngestStack, events, fast_producer_on, publish_events};
use crate::support::services::WorkerProcess;
use crate::support::{Scratch, TestDatabase, create_topic_on, unique_name};
use logbus_devstack::{ChFront, Kafka};
use nix::sys::signal::Signal;
use rdkafka::producer::FutureProducer;

/// `logbus_ingest_retries_total{op="<op>"}`: failed ClickHouse calls of that kind.
async fn retries(worker: &WorkerProcess, op: &str) -> u64 {
    let series = format!("logbus_ingest_retries_total{{op=\"{op}\"}}");
    worker.metric(&series).await.expect("metrics") as u64
}

// ---------------------------------------------------------------------------------------------
// Checks.

fn quota_of(events: &[Event]) -> i64 {
    events.iter().map(|e| e.quota).sum()
}

/// Waits for `rows` rows, lets late (duplicate) writes show up, then checks exactly-once.
async fn assert_exactly_once(stack: &IngestStack, rows: u64, quota: i64) {
    let reached = stack.wait_for_rows(rows, Duration::from_secs(90)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = stack.totals().await;
    reached.assert_exact(rows, quota);
    after.assert_exact(rows, quota);
}

/// Publishes `events` in chunks with a pause between them, as a live stream would arrive.
fn publish_paced(
    producer: FutureProducer,
    topic: &str,
    events: Vec<Event>,
    chunk: usize,
    pause: Duration,
) -> tokio::task::JoinHandle<()> {
    let topic = topic.to_owned();
    tokio::spawn(async move {
        for part in events.chunks(chunk) {
            publish_events(&producer, &topic, part).await;
            tokio::time::sleep(pause).await;
        }
    })
}

fn waves(mut all: Vec<Event>, sizes: &[usize]) -> Vec<Vec<Event>> {
    let mut out = Vec::new();
    for &size in sizes {
        let rest = all.split_off(size);
        out.push(std::mem::replace(&mut all, rest));
    }
    assert!(all.is_empty(), "wave sizes add up to the events");
    out
}

// ---------------------------------------------------------------------------------------------
// 1. The ClickHouse front stopped (SIGTERM, then SIGKILL) and restarted mid-stream.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_front_stopped_and_restarted_mid_stream_loses_nothing_and_duplicates_nothing() {
    crate::support::init_tracing();
    let _heavy = crate::support::heavy_test().await;
    let scratch = Scratch::new("chfront");
    let mut front = ChFront::start(
        crate::support::free_port(),
        scratch.path().join("clickhouse"),
        scratch.path().join("chfront.log"),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let client = clickhouse::Client::default().with_url(front.url());

    // Topics and group on the shared broker; the database on the private front.
    let name = unique_name("test");
    logbus_projections::migrate(&client, &name, Default::default())
        .await
        .expect("migrations apply on the private front");
    let db = TestDatabase {
        client: client.with_database(&name),
        name,
    };
    let stack = IngestStack {
        db,
        logs_topic: crate::support::create_topic("logs", 4).await,
        identity_topic: crate::support::create_topic("identity", 1).await,
        dlq_topic: crate::support::create_topic("dlq", 1).await,
        group_id: unique_name("ingest"),
        partitions: 4,
    };
    let mut config = stack.config();
    config.clickhouse.url = front.url();
    // Batches of 1,000 rows: while a backlog is drained the worker is nearly always inside a
    // ClickHouse call.
    config.batch_max_rows = 1_000;

    let all = events(61, 20_000);
    let total = all.len() as u64;
    let quota = quota_of(&all);
    let mut waves = waves(all, &[4_000, 4_000, 6_000, 3_000, 3_000]).into_iter();
    let producer = fast_producer_on(&crate::support::kafka_brokers());
    publish_events(&producer, &stack.logs_topic, &waves.next().expect("wave")).await;

    let mut worker = WorkerProcess::spawn(&config, None, &scratch.path().join("worker.log")).await;
    stack.wait_for_rows(1_000, Duration::from_secs(60)).await;

    // Outage 1: SIGTERM (the front finishes its in-flight requests and exits), while the
    // next wave is being published.
    let publishing = publish_paced(
        fast_producer_on(&crate::support::kafka_brokers()),
        &stack.logs_topic,
        waves.next().expect("wave"),
        1_000,
        Duration::from_millis(300),
    );
    let before = stack.totals().await;
    let status = front.stop(Signal::SIGTERM).await.expect("chfront stops");
    assert!(status.success(), "chfront exits 0 on SIGTERM ({status})");
    eprintln!("chfront stopped with SIGTERM at {before:?}");
    worker.wait_ready(false, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    publishing.await.expect("publisher");
    front.restart().await.expect("chfront restarts");

    // Outage 2: SIGKILL while the worker drains a backlog. The nasty case is an insert into
    // `logs` in flight when the front dies (it may or may not have landed; its response is
    // lost). Whether the kill hit one shows in the worker's metrics: its next failed call is
    // `insert_logs` (intent and filter done, insert sent or about to be). Repeated a few
    // times until it does; every round is a real SIGKILL and restart.
    let resumed = stack
        .wait_for_rows(before.rows + 2_000, Duration::from_secs(60))
        .await;
    eprintln!("after the SIGTERM outage: {resumed:?}");
    // A backlog, so that the worker is busy with full batches, and a live stream on top.
    publish_events(&producer, &stack.logs_topic, &waves.next().expect("wave")).await;
    let publishing = publish_paced(
        fast_producer_on(&crate::support::kafka_brokers()),
        &stack.logs_topic,
        waves.next().expect("wave"),
        1_000,
        Duration::from_millis(200),
    );
    let mut mid_insert = false;
    // The kill comes at a different point of the worker's flush cycle each round: a batch
    // just landed, then this much later (intent, filter and insert follow each other).
    let delays_ms = [60, 120, 30, 90, 150, 0, 180, 45, 105, 75];
    for (round, delay_ms) in delays_ms.into_iter().enumerate() {
        let failed_inserts = retries(&worker, "insert_logs").await;
        let now = stack.totals().await.rows;
        let draining = stack.wait_for_rows(now + 1, Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        front
            .stop(Signal::SIGKILL)
            .await
            .expect("chfront is killed");
        worker.wait_ready(false, Duration::from_secs(15)).await;
        mid_insert = retries(&worker, "insert_logs").await > failed_inserts;
        eprintln!(
            "chfront killed with SIGKILL (round {}, {delay_ms} ms after a batch landed) at \
             {draining:?}; insert into logs in flight: {mid_insert}",
            round + 1
        );
        tokio::time::sleep(Duration::from_secs(if mid_insert { 3 } else { 1 })).await;
        front.restart().await.expect("chfront restarts");
        if mid_insert {
            break;
        }
    }
    assert!(
        mid_insert,
        "no SIGKILL in {} rounds hit an insert into logs in flight",
        delays_ms.len()
    );
    publishing.await.expect("publisher");

    publish_events(&producer, &stack.logs_topic, &waves.next().expect("wave")).await;
    assert_exactly_once(&stack, total, quota).await;
    let metrics = worker.assert_recovered_and_stop().await;
    eprintln!("worker metrics:\n{metrics}");
    assert!(
        metrics.contains("logbus_ingest_retries_total"),
        "the worker saw the outages"
    );
    // The database lives on the private front, which goes with its scratch folder.
    crate::support::delete_topics(&[&stack.logs_topic, &stack.identity_topic, &stack.dlq_topic])
        .await;
    drop(front);
}

// ---------------------------------------------------------------------------------------------
// 2. The broker SIGKILLed mid-stream and restarted.

/// A private single-node Kafka is SIGKILLed while events are being published and the worker
/// drains, kept down for a few seconds, and restarted on the same log directories. The
/// worker's fetches, commits and dead-letter sends fail meanwhile; it must carry on by itself
/// once the broker is back, and the producer's retries (idempotent) must not duplicate rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_killed_and_restarted_mid_stream_loses_nothing_and_duplicates_nothing() {
    crate::support::init_tracing();
    let _heavy = crate::support::heavy_test().await;
    let scratch = Scratch::new("broker_kill");
    let mut broker = Kafka::start(scratch.path().join("kafka"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let brokers = broker.brokers();

    // Topics and group on the private broker; the database on the shared ClickHouse.
    let stack = IngestStack {
        logs_topic: create_topic_on(&brokers, "logs", 4, 1).await,
        identity_topic: create_topic_on(&brokers, "identity", 1, 1).await,
        dlq_topic: create_topic_on(&brokers, "dlq", 1, 1).await,
        group_id: unique_name("ingest"),
        partitions: 4,
        db: TestDatabase::migrated().await,
    };
    let mut config = stack.config();
    config.kafka.brokers = brokers.clone();
    config.batch_max_rows = 1_000;

    let all = events(71, 20_000);
    let total = all.len() as u64;
    let quota = quota_of(&all);
    let mut waves = waves(all, &[6_000, 8_000, 6_000]).into_iter();
    let producer = fast_producer_on(&brokers);
    publish_events(&producer, &stack.logs_topic, &waves.next().expect("wave")).await;

    let mut worker = WorkerProcess::spawn(&config, None, &scratch.path().join("worker.log")).await;
    stack.wait_for_rows(2_000, Duration::from_secs(60)).await;

    // Kill the broker while the next wave is being published and the worker still drains.
    let publishing = publish_paced(
        fast_producer_on(&brokers),
        &stack.logs_topic,
        waves.next().expect("wave"),
        1_000,
        Duration::from_millis(250),
    );
    stack.wait_for_rows(3_000, Duration::from_secs(60)).await;
    broker.kill().await.expect("the broker is killed");
    let at_kill = stack.totals().await;
    eprintln!("broker killed (SIGKILL) at {at_kill:?}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    worker.assert_running();
    broker
        .restart()
        .await
        .expect("the broker restarts on its data");
    eprintln!("broker restarted at {:?}", stack.totals().await);
    publishing.await.expect("publisher");

    publish_events(&producer, &stack.logs_topic, &waves.next().expect("wave")).await;
    assert_exactly_once(&stack, total, quota).await;
    let metrics = worker.assert_recovered_and_stop().await;
    eprintln!("worker metrics:\n{metrics}");
    drop(producer);
    drop(broker);
    stack.db.drop_database().await;
}
