//! The rdkafka side of the worker: the consumer's settings, rebalance delivery and commits.
//!
//! Rebalances: librdkafka calls the [`ConsumerContext`] from inside a poll; the context sends
//! each assignment and revocation down a channel that the consume loop drains before it acts
//! on a message or decides to commit. Nothing is shared behind a lock.
//!
//! Commits must not block the async runtime, and a partition's commits must stay in offset
//! order. While running, the loop commits with [`CommitMode::Async`]: the call only enqueues
//! the request, and librdkafka sends a consumer's commits over its one coordinator connection
//! in the order they were made, so a later (higher) offset is never overtaken by an earlier
//! one; the loop itself commits a partition only after its previous batch was written (one
//! write in flight per partition), so the offsets it enqueues only grow. The outcome arrives
//! in [`ConsumerContext::commit_callback`], which keeps the metrics. At shutdown there is no
//! later poll to deliver that outcome, so the final offsets are committed once more,
//! synchronously, on a blocking thread ([`commit_final`]); re-committing an offset is harmless.

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

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        record_commit(result, offsets);
    }
}

/// Metrics and logs of a commit's outcome. A failed commit is not fatal: the batch is in
/// ClickHouse and recorded; whoever owns the partition next replays it at the same
/// boundaries and it is deduplicated.
fn record_commit(result: KafkaResult<()>, offsets: &TopicPartitionList) {
    match result {
        Ok(()) => {
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

fn offsets(commits: &[(TopicPartition, i64)]) -> Option<TopicPartitionList> {
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

/// Enqueues the commit of `next_offset` for `source` (see the module doc for the order).
pub(crate) fn commit(consumer: &LogConsumer, source: &TopicPartition, next_offset: i64) {
    let Some(list) = offsets(&[(source.clone(), next_offset)]) else {
        return;
    };
    if let Err(e) = consumer.commit(&list, CommitMode::Async) {
        record_commit(Err(e), &list);
    }
}

/// Commits `commits` synchronously on a blocking thread, at shutdown.
pub(crate) async fn commit_final(consumer: Arc<LogConsumer>, commits: Vec<(TopicPartition, i64)>) {
    if commits.is_empty() {
        return;
    }
    let Some(list) = offsets(&commits) else {
        return;
    };
    let outcome = tokio::task::spawn_blocking(move || {
        let result = consumer.commit(&list, CommitMode::Sync);
        record_commit(result, &list);
    })
    .await;
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "final commit task failed");
    }
}
