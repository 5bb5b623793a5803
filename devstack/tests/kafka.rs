//! The private Kafka brokers of `logbus-devstack` start, keep their data across a crash, and
//! (the cluster) keep accepting `acks=all` writes with one node down. They start JVMs (one,
//! then three), so they are ignored by default: `cargo test -p logbus-devstack -- --ignored`
//! (after `make install`).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use logbus_devstack::{Kafka, KafkaCluster};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// A scratch folder, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("logbus-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn create_topic(brokers: &str, topic: &str, partitions: i32, replication: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new(
                topic,
                partitions,
                TopicReplication::Fixed(replication),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await
        .unwrap();
    for result in results {
        result.unwrap();
    }
}

async fn produce(brokers: &str, topic: &str, values: std::ops::Range<u32>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    for value in values {
        let payload = value.to_string();
        producer
            .send(
                FutureRecord::<(), _>::to(topic).payload(&payload),
                Duration::from_secs(60),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce {value} to {topic}: {e}"));
    }
}

/// Every value in `topic` (read from the beginning, no group), sorted.
fn read_all(brokers: &str, topic: &str, expect: usize) -> Vec<u32> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("read-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut values = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while values.len() < expect && std::time::Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(500)) {
            let message = message.unwrap();
            let text = std::str::from_utf8(message.payload().unwrap()).unwrap();
            values.push(text.parse().unwrap());
        }
    }
    values.sort_unstable();
    values
}

#[tokio::test]
#[ignore = "starts a JVM: cargo test -p logbus-devstack -- --ignored"]
async fn a_single_node_keeps_its_topics_and_records_across_a_sigkill() {
    let scratch = Scratch::new("kafka");
    let t = std::time::Instant::now();
    let mut kafka = Kafka::start(scratch.0.clone()).await.unwrap();
    eprintln!("{:?} started", t.elapsed());
    let brokers = kafka.brokers();
    create_topic(&brokers, "crash", 3, 1).await;
    produce(&brokers, "crash", 0..100).await;
    kafka.kill().await.unwrap();
    eprintln!("{:?} 100 produced, killed", t.elapsed());
    kafka.restart().await.unwrap();
    eprintln!("{:?} restarted", t.elapsed());
    assert_eq!(kafka.brokers(), brokers, "same port after a restart");
    produce(&brokers, "crash", 100..200).await;
    assert_eq!(
        read_all(&brokers, "crash", 200),
        (0..200).collect::<Vec<_>>()
    );
    kafka.stop(nix::sys::signal::Signal::SIGTERM).await.unwrap();
}

#[tokio::test]
#[ignore = "starts three JVMs: cargo test -p logbus-devstack -- --ignored"]
async fn a_three_node_cluster_takes_acks_all_writes_with_one_node_killed() {
    let scratch = Scratch::new("kafka-cluster");
    let t = std::time::Instant::now();
    let mut cluster = KafkaCluster::start(scratch.0.clone()).await.unwrap();
    eprintln!("{:?} cluster started", t.elapsed());
    let brokers = cluster.brokers();
    assert_eq!(brokers.split(',').count(), 3);
    create_topic(&brokers, "failover", 6, 3).await;
    produce(&brokers, "failover", 0..100).await;
    eprintln!("{:?} topic created, 100 produced", t.elapsed());
    cluster.kill(1).await.unwrap();
    assert!(!cluster.is_running(1));
    // min.insync.replicas=2: two live replicas are enough for acks=all.
    produce(&brokers, "failover", 100..200).await;
    eprintln!("{:?} node 1 killed, 100 more produced", t.elapsed());
    cluster.restart(1).await.unwrap();
    eprintln!("{:?} node 1 restarted", t.elapsed());
    produce(&cluster.broker(1), "failover", 200..300).await;
    eprintln!("{:?} 100 more produced via node 1", t.elapsed());
    assert_eq!(
        read_all(&brokers, "failover", 300),
        (0..300).collect::<Vec<_>>()
    );
    eprintln!("{:?} 300 read back", t.elapsed());
    cluster.shutdown().await.unwrap();
    eprintln!("{:?} shut down", t.elapsed());
}
