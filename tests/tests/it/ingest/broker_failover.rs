//! Broker failover in a private 3-node Apache Kafka cluster (KRaft, every topic with
//! replication factor 3, `min.insync.replicas=2`): the broker that leads every consumed
//! partition, and is also the group's coordinator, is SIGKILLed while events stream in
//! (`acks=all`, idempotent producer) and a worker process drains them; the cluster elects new
//! leaders and a new coordinator, the worker (the same process, never restarted, its
//! `--brokers` the whole cluster) goes on with the broker still down, then the broker is
//! restarted on its data and catches up. Every event lands exactly once in `logs` and in the
//! `logs_minute` rollup.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::ingest::publish_events;
use crate::support::ingest::{IngestStack, StreamPublisher, events, fast_producer_on};
use crate::support::services::WorkerProcess;
use crate::support::{Scratch, TestDatabase, create_topic_with, eventually, unique_name};
use logbus_devstack::KafkaCluster;
use rdkafka::ClientConfig;
use rdkafka::TopicPartitionList;
use rdkafka::admin::TopicReplication;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// One partition as the cluster's metadata describes it.
#[derive(Debug, Clone)]
struct PartitionState {
    partition: i32,
    /// The leader's node id (-1: none).
    leader: i32,
    isr: Vec<i32>,
}

/// Metadata requests to the cluster (blocking librdkafka calls, made off the async runtime).
struct ClusterView {
    client: Arc<BaseConsumer>,
}

impl ClusterView {
    fn new(brokers: &str) -> Self {
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("allow.auto.create.topics", "false")
            .create()
            .expect("metadata client");
        Self {
            client: Arc::new(client),
        }
    }

    /// `topic`'s partitions and the port of each broker id; `None` if no broker answered or
    /// the topic is not (yet) known.
    async fn topic(&self, topic: &str) -> Option<(Vec<PartitionState>, Vec<(i32, u16)>)> {
        let client = self.client.clone();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let metadata = client
                .fetch_metadata(Some(&topic), Duration::from_secs(5))
                .ok()?;
            let brokers = metadata
                .brokers()
                .iter()
                .map(|b| (b.id(), u16::try_from(b.port()).expect("a port")))
                .collect();
            let found = metadata.topics().iter().find(|t| t.name() == topic)?;
            if found.error().is_some() || found.partitions().is_empty() {
                return None;
            }
            let partitions = found
                .partitions()
                .iter()
                .map(|p| PartitionState {
                    partition: p.id(),
                    leader: p.leader(),
                    isr: p.isr().to_vec(),
                })
                .collect();
            Some((partitions, brokers))
        })
        .await
        .expect("metadata task")
    }

    /// Node ids leading `topic`'s partitions, mapped from each leader's advertised port
    /// ([`KafkaCluster::node_of_port`]); `None` until every partition has a leader.
    async fn leader_nodes(&self, cluster: &KafkaCluster, topic: &str) -> Option<Vec<u32>> {
        let (partitions, brokers) = self.topic(topic).await?;
        partitions
            .iter()
            .map(|p| {
                let port = brokers.iter().find(|(id, _)| *id == p.leader)?.1;
                let node = cluster.node_of_port(port)?;
                assert_eq!(
                    i64::from(node),
                    i64::from(p.leader),
                    "broker ids are node ids"
                );
                Some(node)
            })
            .collect()
    }
}

/// Java's `String.hashCode` (over UTF-16 code units, wrapping).
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The node that will coordinate `group`: the leader of its `__consumer_offsets` partition,
/// `Utils.abs(group.hashCode()) % partitions` in Kafka's group coordinator. The offsets topic
/// is created by the first FindCoordinator request, which an offset lookup of a throwaway
/// group sends.
async fn coordinator_to_be(view: &ClusterView, cluster: &KafkaCluster, group: &str) -> u32 {
    let probe: Arc<BaseConsumer> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", cluster.brokers())
            .set("group.id", unique_name("probe"))
            .create()
            .expect("probe consumer"),
    );
    let (partitions, _) = eventually(
        "__consumer_offsets created with a leader for every partition",
        Duration::from_secs(60),
        || {
            let probe = probe.clone();
            async move {
                let _ = tokio::task::spawn_blocking(move || {
                    let mut list = TopicPartitionList::new();
                    list.add_partition("logbus-probe", 0);
                    probe.committed_offsets(list, Duration::from_secs(3))
                })
                .await;
                let found = view.topic("__consumer_offsets").await?;
                found.0.iter().all(|p| p.leader >= 0).then_some(found)
            }
        },
    )
    .await;
    let count = i32::try_from(partitions.len()).expect("partition count");
    let index = java_string_hash(group).checked_abs().unwrap_or(0) % count;
    let leader = partitions
        .iter()
        .find(|p| p.partition == index)
        .expect("the group's offsets partition")
        .leader;
    u32::try_from(leader).expect("a node id")
}

/// Replicas of `partitions` partitions on all three nodes, `leader` first (the preferred
/// leader, elected when the topic is created), the followers alternating.
fn led_by(leader: u32, partitions: usize) -> Vec<Vec<i32>> {
    let others: Vec<i32> = (1..=KafkaCluster::NODES)
        .filter(|n| *n != leader)
        .map(|n| i32::try_from(n).expect("a node id"))
        .collect();
    let leader = i32::try_from(leader).expect("a node id");
    (0..partitions)
        .map(|p| {
            let (a, b) = (others[p % 2], others[(p + 1) % 2]);
            vec![leader, a, b]
        })
        .collect()
}

async fn create_topic_led_by(
    brokers: &str,
    prefix: &str,
    partitions: usize,
    leader: u32,
) -> String {
    let assignment = led_by(leader, partitions);
    let assignment: Vec<&[i32]> = assignment.iter().map(Vec::as_slice).collect();
    create_topic_with(
        brokers,
        prefix,
        i32::try_from(partitions).expect("partitions"),
        TopicReplication::Variable(&assignment),
    )
    .await
}

/// The group coordinator's node id as the worker's consumer last found it (librdkafka's
/// `cgrp` debug line `Group "…" coordinator is 127.0.0.1:<port> id <id>`).
fn logged_coordinator(worker: &WorkerProcess) -> Option<u32> {
    let text = std::fs::read_to_string(worker.log()).ok()?;
    text.lines().rev().find_map(|line| {
        let rest = &line[line.find("coordinator is ")? + "coordinator is ".len()..];
        let id = rest.split(" id ").nth(1)?;
        let digits: String = id.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_leader_and_coordinator_killed_mid_stream_fail_over_exactly_once() {
    crate::support::init_tracing();
    let _heavy = crate::support::heavy_test().await;
    let started = Instant::now();
    let scratch = Scratch::new("failover");
    let mut cluster = KafkaCluster::start(scratch.path().join("kafka"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let brokers = cluster.brokers();
    eprintln!("cluster of 3 up after {:?}: {brokers}", started.elapsed());
    let view = ClusterView::new(&brokers);

    // Every consumed partition (and the dead-letter topic) is led by the node that also
    // coordinates the group: killing it fails over the fetches, the produces, the heartbeats
    // and the commits at once.
    let group_id = unique_name("ingest");
    let victim = coordinator_to_be(&view, &cluster, &group_id).await;
    let stack = IngestStack {
        logs_topic: create_topic_led_by(&brokers, "logs", 4, victim).await,
        identity_topic: create_topic_led_by(&brokers, "identity", 1, victim).await,
        dlq_topic: create_topic_led_by(&brokers, "dlq", 1, victim).await,
        group_id,
        partitions: 4,
        db: TestDatabase::migrated().await,
    };
    // The broker that leads the consumed partitions, from the metadata (not from the
    // assignment asked for); if leadership were spread, the one leading most of them.
    let leaders = eventually(
        "leaders for every consumed partition",
        Duration::from_secs(30),
        || async {
            let mut all = view.leader_nodes(&cluster, &stack.logs_topic).await?;
            all.extend(view.leader_nodes(&cluster, &stack.identity_topic).await?);
            Some(all)
        },
    )
    .await;
    let leader = (1..=KafkaCluster::NODES)
        .max_by_key(|node| leaders.iter().filter(|l| *l == node).count())
        .expect("a node");
    eprintln!("consumed partitions led by {leaders:?}; group coordinator to be: {victim}");
    assert_eq!(
        leader, victim,
        "every consumed partition is led by node {victim}"
    );
    assert!(leaders.iter().all(|l| *l == leader), "{leaders:?}");

    let mut config = stack.config();
    config.kafka.brokers = brokers.clone();
    config.batch_max_rows = 1_000;

    // A backlog, the worker draining it, then a live stream on top.
    let backlog = events(81, 6_000);
    let backlog_quota: i64 = backlog.iter().map(|e| e.quota).sum();
    let producer = fast_producer_on(&brokers);
    publish_events(&producer, &stack.logs_topic, &backlog).await;
    let mut worker =
        WorkerProcess::spawn_with_group_debug(&config, &scratch.path().join("worker.log")).await;
    stack.wait_for_rows(2_000, Duration::from_secs(60)).await;
    let coordinator = eventually(
        "the worker to log its group coordinator",
        Duration::from_secs(30),
        || std::future::ready(logged_coordinator(&worker)),
    )
    .await;
    assert_eq!(
        coordinator, victim,
        "the group coordinator the worker found is node {victim}"
    );
    let stream = StreamPublisher::start(
        fast_producer_on(&brokers),
        &stack.logs_topic,
        82,
        500,
        Duration::from_millis(250),
    );
    eventually("the stream to flow", Duration::from_secs(30), || {
        std::future::ready((stream.published() >= 1_000).then_some(()))
    })
    .await;
    stack.wait_for_rows(3_000, Duration::from_secs(60)).await;

    // SIGKILL the leader (and coordinator) mid-stream.
    let status = cluster.kill(victim).await.expect("the leader is killed");
    let killed = Instant::now();
    let at_kill = stack.totals().await;
    let published_at_kill = stream.published();
    eprintln!(
        "node {victim} killed ({status}) at {at_kill:?}, {published_at_kill} streamed events \
         acknowledged"
    );

    // The cluster fails over: new leaders, the dead node out of every ISR.
    let survivors_lead = |topic: String| {
        let view = &view;
        async move {
            let (partitions, _) = view.topic(&topic).await?;
            let dead = i32::try_from(victim).expect("a node id");
            partitions
                .iter()
                .all(|p| p.leader >= 0 && p.leader != dead && !p.isr.contains(&dead))
                .then_some(partitions)
        }
    };
    let moved = eventually(
        "new leaders for every consumed partition",
        Duration::from_secs(30),
        || survivors_lead(stack.logs_topic.clone()),
    )
    .await;
    eprintln!(
        "leaders moved {:?} after the kill: {moved:?}",
        killed.elapsed()
    );
    // The worker finds the new coordinator by itself.
    eventually(
        "the worker to find a new group coordinator",
        Duration::from_secs(60),
        || std::future::ready(logged_coordinator(&worker).filter(|node| *node != victim)),
    )
    .await;
    eprintln!(
        "new coordinator found {:?} after the kill",
        killed.elapsed()
    );

    // With the node still down, the stream goes on (acks=all, 2 in-sync replicas left) and
    // the worker ingests everything acknowledged so far.
    let published = eventually(
        "2,000 more streamed events acknowledged with the node down",
        Duration::from_secs(60),
        || {
            let now = stream.published();
            std::future::ready((now >= published_at_kill + 2_000).then_some(now))
        },
    )
    .await;
    let caught_up = stack
        .wait_for_rows(backlog.len() as u64 + published, Duration::from_secs(60))
        .await;
    eprintln!(
        "caught up with the node down ({:?} after the kill): {caught_up:?}",
        killed.elapsed()
    );
    worker.assert_running();
    assert!(!cluster.is_running(victim));

    // The node comes back on its data and catches up (back in every ISR).
    cluster
        .restart(victim)
        .await
        .expect("the node restarts on its data");
    let rejoined = eventually(
        "the restarted node back in every consumed partition's ISR",
        Duration::from_secs(60),
        || async {
            let (partitions, _) = view.topic(&stack.logs_topic).await?;
            let back = i32::try_from(victim).expect("a node id");
            partitions
                .iter()
                .all(|p| p.leader >= 0 && p.isr.contains(&back))
                .then_some(partitions)
        },
    )
    .await;
    eprintln!(
        "node {victim} back in sync {:?} after the kill: {rejoined:?}",
        killed.elapsed()
    );
    let after_restart = stream.published();
    eventually(
        "1,000 more streamed events after the restart",
        Duration::from_secs(60),
        || std::future::ready((stream.published() >= after_restart + 1_000).then_some(())),
    )
    .await;
    let (streamed, streamed_quota) = stream.finish().await;

    let total = backlog.len() as u64 + streamed;
    stack
        .assert_exactly_once(
            total,
            backlog_quota + streamed_quota,
            Duration::from_secs(90),
        )
        .await;

    let metrics = worker.assert_recovered_and_stop().await;
    eprintln!(
        "{total} events exactly once in {:?}; worker metrics:\n{metrics}",
        started.elapsed()
    );
    drop(producer);
    drop(view);
    drop(cluster);
    stack.db.drop_database().await;
}
