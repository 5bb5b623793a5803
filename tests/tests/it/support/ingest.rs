//! The ingest tests' stack: one test's database, topics and consumer group, the one way to
//! configure a worker over them ([`IngestStack::config`]), events to publish and the totals
//! that prove exactly-once.
use std::time::Duration;

use crate::support::{TestDatabase, create_topic, eventually, kafka_brokers};
use clickhouse::Row;
use logbus_gen::Generator;
use logbus_ingest::IngestConfig;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::Deserialize;

/// The one base of every worker configuration in the tests: the test stack's broker and
/// ClickHouse, `database`, the `[logs, identity, dead-letter]` topics and `group_id`, port 0
/// for the metrics endpoint, and the shorter session and flush interval tests want; every
/// other setting at its default. Built explicitly, never from the caller's `LOGBUS_*`
/// environment.
pub(crate) fn worker_config(
    database: &str,
    [logs, identity, dlq]: [&str; 3],
    group_id: &str,
) -> IngestConfig {
    let mut config = IngestConfig::new(
        logbus_ingest::KafkaArgs {
            brokers: kafka_brokers(),
            logs_topic: logs.to_owned(),
            identity_topic: identity.to_owned(),
        },
        crate::support::services::clickhouse_args(database),
    );
    config.group_id = group_id.to_owned();
    config.dlq_topic = dlq.to_owned();
    config.http_addr = "127.0.0.1:0".parse().expect("address");
    config.session_timeout_ms = 6000;
    config.flush_interval_ms = 200;
    // The tests' logs are stamped years back (fixed timestamps): no TTL may drop them mid-test.
    config.retention_raw_days = 0;
    config.retention_rollup_days = 0;
    config
}

/// One test's private database, topics and consumer group.
pub(crate) struct IngestStack {
    pub db: TestDatabase,
    pub logs_topic: String,
    pub identity_topic: String,
    pub dlq_topic: String,
    pub group_id: String,
    pub partitions: i32,
}

impl IngestStack {
    pub(crate) async fn new(partitions: i32) -> Self {
        crate::support::init_tracing();
        let db = TestDatabase::migrated().await;
        Self {
            db,
            logs_topic: create_topic("logs", partitions).await,
            identity_topic: create_topic("identity", 1).await,
            dlq_topic: create_topic("dlq", 1).await,
            group_id: crate::support::unique_name("ingest"),
            partitions,
        }
    }

    /// The worker configuration over this stack (see [`worker_config`]).
    pub(crate) fn config(&self) -> IngestConfig {
        worker_config(
            &self.db.name,
            [&self.logs_topic, &self.identity_topic, &self.dlq_topic],
            &self.group_id,
        )
    }

    /// The end of a passing test on the test stack's broker: its topics and its database go.
    pub(crate) async fn finish(self) {
        crate::support::delete_topics(&[&self.logs_topic, &self.identity_topic, &self.dlq_topic])
            .await;
        self.db.drop_database().await;
    }

    pub(crate) async fn totals(&self) -> Totals {
        self.db
            .client
            .query(
                "SELECT raw.rows AS rows, raw.distinct_ids AS distinct_ids, raw.quota AS quota,
                        rollup.requests AS rollup_requests, rollup.quota AS rollup_quota
                 FROM (SELECT count() AS rows, uniqExact(event_id) AS distinct_ids,
                              sum(quota) AS quota FROM logs) AS raw
                 CROSS JOIN (SELECT sum(requests) AS requests, sum(quota) AS quota
                             FROM logs_minute) AS rollup",
            )
            .fetch_one::<Totals>()
            .await
            .expect("totals query")
    }

    /// Waits (up to `timeout`) until `logs` holds `rows` rows and the minute rollup counts as
    /// many requests. Both, because an insert's rows become visible in `logs` before its
    /// materialized view has written them to `logs_minute`: a query running beside the insert
    /// (ClickHouse runs them concurrently) can see the first without the second.
    pub(crate) async fn wait_for_rows(&self, rows: u64, timeout: Duration) -> Totals {
        eventually(
            &format!("{rows} rows in logs and in the rollup"),
            timeout,
            || async {
                let totals = self.totals().await;
                (totals.rows >= rows && totals.rollup_requests >= rows).then_some(totals)
            },
        )
        .await
    }

    /// Waits until the worker has committed every message of the logs topic (committed offset =
    /// high watermark on each partition): all it was sent is written, duplicates included.
    pub(crate) async fn wait_consumed(&self, timeout: Duration) {
        let (group, topic, partitions) = (
            self.group_id.clone(),
            self.logs_topic.clone(),
            self.partitions,
        );
        eventually("the worker to commit the whole logs topic", timeout, || {
            let (group, topic) = (group.clone(), topic.clone());
            async move {
                tokio::task::spawn_blocking(move || consumed(&group, &topic, partitions))
                    .await
                    .expect("offsets task")
                    .then_some(())
            }
        })
        .await;
    }

    /// Waits (up to `timeout`) for `rows` rows, checks exactly-once, then checks again a
    /// second later, so that late (duplicate) writes would show.
    pub(crate) async fn assert_exactly_once(&self, rows: u64, quota: i64, timeout: Duration) {
        let reached = self.wait_for_rows(rows, timeout).await;
        reached.assert_exact(rows, quota);
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.totals().await.assert_exact(rows, quota);
    }
}

fn consumed(group: &str, topic: &str, partitions: i32) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let Ok(committed) = consumer.committed_offsets(list, Duration::from_secs(5)) else {
        return false;
    };
    committed.elements().iter().all(|e| {
        let high = consumer
            .fetch_watermarks(topic, e.partition(), Duration::from_secs(5))
            .map_or(i64::MAX, |(_, high)| high);
        matches!(e.offset(), rdkafka::Offset::Offset(o) if o == high) || high == 0
    })
}

/// A live stream: generated events published in chunks of `chunk`, `pause` apart, from a
/// task of its own, until [`StreamPublisher::finish`]. Each chunk is awaited (every
/// acknowledgement) before the next, so a broker outage slows the stream down instead of
/// piling up sends.
pub(crate) struct StreamPublisher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    published: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<(u64, i64)>,
}

impl StreamPublisher {
    pub(crate) fn start(
        producer: FutureProducer,
        topic: &str,
        seed: u64,
        chunk: usize,
        pause: Duration,
    ) -> Self {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let published = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let topic = topic.to_owned();
        let task = tokio::spawn({
            let stop = stop.clone();
            let published = published.clone();
            async move {
                let mut quota = 0;
                for round in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let part = events(seed.wrapping_mul(1_000_003).wrapping_add(round), chunk);
                    publish_events(&producer, &topic, &part).await;
                    quota += part.iter().map(|e| e.quota).sum::<i64>();
                    published.fetch_add(part.len() as u64, Ordering::SeqCst);
                    tokio::time::sleep(pause).await;
                }
                (published.load(Ordering::SeqCst), quota)
            }
        });
        Self {
            stop,
            published,
            task,
        }
    }

    /// Events acknowledged so far.
    pub(crate) fn published(&self) -> u64 {
        self.published.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops after the chunk in flight is acknowledged; returns the events published and
    /// their quota.
    pub(crate) async fn finish(self) -> (u64, i64) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(120), self.task)
            .await
            .expect("the publisher finishes its last chunk within 120 s")
            .expect("the publisher did not panic")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Row, Deserialize)]
pub(crate) struct Totals {
    pub rows: u64,
    pub distinct_ids: u64,
    pub quota: i64,
    pub rollup_requests: u64,
    pub rollup_quota: i64,
}

impl Totals {
    /// Exactly `rows` rows with distinct event ids and `quota` in all, in `logs` and in the
    /// `logs_minute` rollup alike: nothing lost, nothing duplicated.
    pub(crate) fn assert_exact(&self, rows: u64, quota: i64) {
        assert_eq!(self.rows, rows, "raw rows: {self:?}");
        assert_eq!(self.distinct_ids, rows, "distinct event ids: {self:?}");
        assert_eq!(self.quota, quota, "raw quota: {self:?}");
        assert_eq!(self.rollup_requests, rows, "rollup requests: {self:?}");
        assert_eq!(self.rollup_quota, quota, "rollup quota: {self:?}");
    }
}

/// A generated event: partition key, JSON payload, quota.
pub(crate) struct Event {
    pub key: String,
    pub payload: Vec<u8>,
    pub quota: i64,
}

/// `count` realistic events from the load generator, spread over the last hour.
pub(crate) fn events(seed: u64, count: usize) -> Vec<Event> {
    let mut generator = Generator::new(seed, 300);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    (0..count)
        .map(|i| {
            let event = generator.next_event(now - 3600 + (i as i64 * 3600 / count as i64));
            Event {
                key: event.user_id.to_string(),
                quota: event.quota.unwrap_or_default(),
                payload: serde_json::to_vec(&event).expect("serialize"),
            }
        })
        .collect()
}

/// A producer for bulk publishing to the test stack's broker.
pub(crate) fn fast_producer() -> FutureProducer {
    fast_producer_on(&kafka_brokers())
}

/// A producer for bulk publishing to `brokers`; it waits out a broker restart (two minutes of
/// retries) rather than dropping events.
pub(crate) fn fast_producer_on(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("message.timeout.ms", "120000")
        .set("enable.idempotence", "true")
        // Implied by idempotence; said explicitly, since the failover tests depend on it.
        .set("acks", "all")
        .set("queue.buffering.max.messages", "500000")
        .create()
        .expect("producer")
}

/// Publishes events (keyed by user id) and waits for every acknowledgement.
pub(crate) async fn publish_events(producer: &FutureProducer, topic: &str, events: &[Event]) {
    for chunk in events.chunks(5_000) {
        let sends = chunk.iter().map(|event| {
            producer.send(
                FutureRecord::to(topic)
                    .key(&event.key)
                    .payload(&event.payload),
                Duration::from_secs(60),
            )
        });
        for outcome in futures::future::join_all(sends).await {
            outcome.unwrap_or_else(|(e, _)| panic!("publish to {topic}: {e}"));
        }
    }
}

/// Publishes one payload to an explicit partition.
pub(crate) async fn publish_to_partition(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    payload: &[u8],
) {
    producer
        .send(
            FutureRecord::<(), [u8]>::to(topic)
                .partition(partition)
                .payload(payload),
            Duration::from_secs(60),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("publish to {topic}/{partition}: {e}"));
}

/// A valid event with a fresh id and zero quota, used as an end-of-stream marker.
pub(crate) fn marker_event(user_id: i64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "event_id": uuid::Uuid::new_v4(),
        "created_at": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs(),
        "type": 4,
        "user_id": user_id,
        "quota": 0,
        "content": "marker",
    }))
    .expect("serialize")
}

/// A consumer reading `stack`'s dead-letter topic from the beginning (outside any group's
/// commits, so every test sees every letter).
pub(crate) fn dlq_reader(stack: &IngestStack) -> rdkafka::consumer::StreamConsumer {
    use rdkafka::consumer::Consumer;
    let consumer: rdkafka::consumer::StreamConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", crate::support::kafka_brokers())
        .set("group.id", crate::support::unique_name("dlqreader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment
        .add_partition_offset(&stack.dlq_topic, 0, rdkafka::Offset::Beginning)
        .expect("assignment");
    consumer.assign(&assignment).expect("assign");
    consumer
}
