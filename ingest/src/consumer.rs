//! The rdkafka side of the worker: the consumer's settings, rebalance delivery and commits.
//!
//! Rebalances: librdkafka calls the [`ConsumerContext`] from inside a poll; the context sends
//! each assignment and revocation down a channel that the consume loop drains before it acts
//! on a message or decides to commit. Nothing is shared behind a lock.
//!
//! Commits must not block the async runtime, and a partition's commits must stay in offset
//! order. They are made by one [`Committer`]: the loop hands it `(partition, next offset)`
//! through a channel and goes on at once; a blocking thread takes them in the order they were
//! sent and commits them synchronously, so each commit's outcome is known (the committed
//! offset gauge, the commit error counter) and no later commit overtakes an earlier one. What
//! queued up while a commit was in flight is merged into the next one, the newest offset of
//! each partition (offsets only grow: the loop commits a partition only after its previous
//! batch). At shutdown the loop closes the channel and waits until every commit handed over
//! is done. (librdkafka's `CommitMode::Async` would not block either, but its outcome is
//! reported through an event that this rdkafka consumer never delivered in our tests, which
//! would leave the commit metrics blind.)

use std::collections::BTreeMap;
use std::sync::Arc;

use metrics::{counter, gauge};
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use crate::metrics::names;
use crate::source::TopicPartition;
use crate::{Error, IngestConfig};

/// A partition assignment change, as the consume loop applies it.
#[derive(Debug)]
pub(crate) enum RebalanceEvent {
    Assign(Vec<TopicPartition>),
    Revoke(Vec<TopicPartition>),
}

/// The consumer's context: forwards rebalances to the consume loop and records commits.
#[derive(Debug)]
pub(crate) struct Context {
    rebalances: mpsc::UnboundedSender<RebalanceEvent>,
}

pub(crate) type LogConsumer = StreamConsumer<Context>;

fn partitions_of(list: &TopicPartitionList) -> Vec<TopicPartition> {
    list.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

impl Context {
    fn forward(&self, event: RebalanceEvent) {
        // The loop holds the receiver for as long as the consumer polls.
        let _closed = self.rebalances.send(event);
    }
}

impl ClientContext for Context {}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions = partitions_of(list);
            tracing::info!(?partitions, "partitions revoked");
            self.forward(RebalanceEvent::Revoke(partitions));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let partitions = partitions_of(list);
            tracing::info!(?partitions, "partitions assigned");
            self.forward(RebalanceEvent::Assign(partitions));
        }
    }
}

/// Metrics and logs of a commit's outcome. A failed commit is not fatal: the batch is in
/// ClickHouse and recorded; whoever owns the partition next replays it at the same
/// boundaries and it is deduplicated.
fn record_commit(result: KafkaResult<()>, offsets: &TopicPartitionList) {
    match result {
        Ok(()) => {
            gauge!(names::LAST_COMMIT).set(crate::metrics::unix_now());
            for element in offsets.elements() {
                if let Offset::Offset(next_offset) = element.offset() {
                    gauge!(
                        names::COMMITTED_OFFSET,
                        "topic" => element.topic().to_owned(),
                        "partition" => element.partition().to_string()
                    )
                    .set(next_offset as f64);
                }
            }
        }
        Err(e) => {
            counter!(names::COMMIT_ERRORS).increment(1);
            let partitions = partitions_of(offsets);
            tracing::warn!(?partitions, error = %e, "offset commit failed");
        }
    }
}

/// Creates the consumer (manual offsets) subscribed to both source topics, and the
/// receiving end of its rebalance events.
pub(crate) fn subscribe(
    config: &IngestConfig,
) -> Result<(Arc<LogConsumer>, mpsc::UnboundedReceiver<RebalanceEvent>), Error> {
    let (rebalances, events) = mpsc::unbounded_channel();
    let mut client = ClientConfig::new();
    if let Ok(debug) = std::env::var("LOGBUS_KAFKA_DEBUG") {
        // librdkafka debug contexts, e.g. `cgrp,fetch` (logged through tracing).
        client.set("debug", debug);
    }
    let consumer: LogConsumer = client
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", config.session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (config.session_timeout_ms / 3).max(100).to_string(),
        )
        .set(
            "max.poll.interval.ms",
            config
                .max_poll_interval_ms
                .max(config.session_timeout_ms)
                .to_string(),
        )
        .set("queued.max.messages.kbytes", "16384")
        .set("fetch.max.bytes", "16777216")
        .set("max.partition.fetch.bytes", "4194304")
        .create_with_context(Context { rebalances })?;
    consumer.subscribe(&[&config.kafka.logs_topic, &config.kafka.identity_topic])?;
    Ok((Arc::new(consumer), events))
}

/// The committer: commits in order on a blocking thread (see the module doc).
#[derive(Debug)]
pub(crate) struct Committer {
    queue: mpsc::UnboundedSender<(TopicPartition, i64)>,
    task: tokio::task::JoinHandle<()>,
}

impl Committer {
    pub(crate) fn start(consumer: Arc<LogConsumer>) -> Self {
        let (queue, commits) = mpsc::unbounded_channel();
        let task = tokio::task::spawn_blocking(move || commit_in_order(&consumer, commits));
        Self { queue, task }
    }

    /// Hands over the commit of `next_offset` for `source`; returns at once.
    pub(crate) fn commit(&self, source: TopicPartition, next_offset: i64) {
        if self.queue.send((source, next_offset)).is_err() {
            tracing::warn!("the committer stopped; offset not committed");
        }
    }

    /// Waits until every commit handed over is done.
    pub(crate) async fn finish(self) {
        drop(self.queue);
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "commit task failed");
        }
    }
}

fn commit_in_order(
    consumer: &LogConsumer,
    mut commits: mpsc::UnboundedReceiver<(TopicPartition, i64)>,
) {
    while let Some((source, next_offset)) = commits.blocking_recv() {
        let mut newest = BTreeMap::from([(source, next_offset)]);
        while let Ok((source, next_offset)) = commits.try_recv() {
            newest.insert(source, next_offset);
        }
        let Some(list) = offsets(&newest) else {
            continue;
        };
        let result = consumer.commit(&list, CommitMode::Sync);
        record_commit(result, &list);
    }
}

fn offsets(commits: &BTreeMap<TopicPartition, i64>) -> Option<TopicPartitionList> {
    let mut list = TopicPartitionList::new();
    for (source, next_offset) in commits {
        if let Err(e) = list.add_partition_offset(
            &source.topic,
            source.partition,
            Offset::Offset(*next_offset),
        ) {
            tracing::warn!(%source, error = %e, "cannot build the commit list");
            return None;
        }
    }
    Some(list)
}
