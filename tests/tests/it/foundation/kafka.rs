//! The broker side of the foundation: an rdkafka producer and a consumer group round-trip
//! messages through the local Kafka-protocol broker, and committed offsets survive a new
//! consumer of the same group.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::{create_topic, kafka_brokers, producer, publish, unique_name};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::producer::FutureRecord;

fn group_consumer(group: &str, topic: &str) -> StreamConsumer {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

async fn receive(consumer: &StreamConsumer, count: usize) -> Vec<(i32, i64, String)> {
    let mut received = Vec::new();
    while received.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .expect("a message within 60 s")
            .expect("consume without error");
        let payload =
            String::from_utf8(message.payload().expect("payload").to_vec()).expect("utf-8");
        received.push((message.partition(), message.offset(), payload));
    }
    received
}

#[tokio::test]
async fn producer_and_consumer_group_round_trip_with_commits() {
    let topic = create_topic("foundation", 3).await;
    let group = unique_name("group");
    let producer = producer();
    let first: Vec<(String, String)> = (0..60)
        .map(|i| (format!("user-{}", i % 7), format!("message-{i}")))
        .collect();
    publish(&producer, &topic, &first).await;

    let consumer = group_consumer(&group, &topic);
    let received = receive(&consumer, first.len()).await;
    let payloads: BTreeSet<_> = received.iter().map(|(_, _, p)| p.clone()).collect();
    let expected: BTreeSet<_> = first.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(payloads, expected, "every message arrives exactly once");
    let partitions: BTreeSet<_> = received.iter().map(|(p, _, _)| *p).collect();
    assert!(
        partitions.len() > 1,
        "keys spread over partitions: {partitions:?}"
    );
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit");
    drop(consumer);

    // A new member of the same group resumes after the committed offsets.
    let second: Vec<(String, String)> = (60..70)
        .map(|i| (format!("user-{}", i % 7), format!("message-{i}")))
        .collect();
    publish(&producer, &topic, &second).await;
    let consumer = group_consumer(&group, &topic);
    let resumed = receive(&consumer, second.len()).await;
    let payloads: BTreeSet<_> = resumed.iter().map(|(_, _, p)| p.clone()).collect();
    let expected: BTreeSet<_> = second.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(
        payloads, expected,
        "only the uncommitted messages are delivered again"
    );
    crate::support::delete_topics(&[&topic]).await;
}

#[tokio::test]
async fn headers_survive_the_broker() {
    let topic = create_topic("headers", 1).await;
    let producer = producer();
    let headers = rdkafka::message::OwnedHeaders::new()
        .insert(rdkafka::message::Header {
            key: "reason",
            value: Some("type 9 is out of range"),
        })
        .insert(rdkafka::message::Header {
            key: "source_offset",
            value: Some("42"),
        });
    producer
        .send(
            FutureRecord::to(&topic)
                .key("k")
                .payload("{}")
                .headers(headers),
            Duration::from_secs(30),
        )
        .await
        .expect("delivered");
    let consumer = group_consumer(&unique_name("group"), &topic);
    let message = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
        .await
        .expect("a message within 60 s")
        .expect("consume");
    let headers = message.headers().expect("headers");
    let found: Vec<(String, String)> = headers
        .iter()
        .map(|h| {
            (
                h.key.to_owned(),
                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            ("reason".to_owned(), "type 9 is out of range".to_owned()),
            ("source_offset".to_owned(), "42".to_owned())
        ]
    );
    crate::support::delete_topics(&[&topic]).await;
}
