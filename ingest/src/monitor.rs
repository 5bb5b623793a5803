//! The lag monitor: a task that, every `--lag-interval-ms`, asks the broker for this
//! worker's assignment's committed offsets and watermarks, sets the consumer lag gauges
//! ([`crate::lag`] defines the lag) and tells [`Readiness`] that Kafka answered.
//!
//! Each measurement is a few blocking librdkafka requests — the assignment (local), the
//! group's committed offsets (`rd_kafka_committed`, one OffsetFetch to the coordinator), the
//! watermarks of each partition (`fetch_watermarks`, a ListOffsets to its leader) — made on
//! a blocking thread (`spawn_blocking`), each bounded by [`REQUEST_TIMEOUT`]; with nothing
//! assigned (joining the group) it is a metadata request for the logs topic. The measurement
//! is also the Kafka probe: it succeeds only if every request was answered, and /readyz says
//! `kafka unreachable` once none succeeded for `--kafka-unreachable-after-ms`.
//!
//! Why not librdkafka's statistics (`statistics.interval.ms`, whose per-partition
//! `hi_offset`, `committed_offset` and `consumer_lag` cost no request), nor its error
//! callback (`ALL_BROKERS_DOWN`)? Both are events served by the consumer's poll, and the
//! consume loop stops polling exactly when lag matters: while ClickHouse is down it waits
//! for a write slot. The gauges would freeze at their last value, and so would readiness.
//! Statistics' `hi_offset` also comes from fetch responses, which stop once the prefetch
//! queue is full (`queued.max.messages.kbytes`). The requests here are answered by the
//! broker whatever the loop does, and one measurement per second is a handful of small
//! requests.

use std::sync::Arc;
use std::time::Duration;

use metrics::gauge;
use rdkafka::Offset;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaResult;
use tokio::sync::oneshot;
use tokio::time::MissedTickBehavior;
use tokio_util::task::AbortOnDropHandle;

use crate::consumer::LogConsumer;
use crate::http::Readiness;
use crate::lag::{LagBook, LagUpdate, PartitionOffsets};
use crate::metrics::names;
use crate::source::TopicPartition;

/// How long one request of a measurement may wait for the broker.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The running monitor; [`LagMonitor::stop`] ends it, dropping it aborts it.
#[derive(Debug)]
pub(crate) struct LagMonitor {
    stop: oneshot::Sender<()>,
    task: AbortOnDropHandle<()>,
}

impl LagMonitor {
    /// Measures every `interval`, the first time at once. `probe_topic` is the topic whose
    /// metadata is asked for while nothing is assigned.
    pub(crate) fn start(
        consumer: Arc<LogConsumer>,
        probe_topic: String,
        readiness: Readiness,
        interval: Duration,
    ) -> Self {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(monitor(consumer, probe_topic, readiness, interval, stopped));
        Self {
            stop,
            task: AbortOnDropHandle::new(task),
        }
    }

    /// Stops the monitor, waiting for a measurement under way (so that it no longer holds
    /// the consumer when the worker closes it).
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "lag monitor failed");
        }
    }
}

async fn monitor(
    consumer: Arc<LogConsumer>,
    probe_topic: String,
    readiness: Readiness,
    interval: Duration,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut book = LagBook::default();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            _ = ticks.tick() => {}
        }
        let consumer = consumer.clone();
        let topic = probe_topic.clone();
        let measured = tokio::task::spawn_blocking(move || measure(&consumer, &topic)).await;
        match measured {
            Ok(Ok(assigned)) => {
                readiness.kafka_reached();
                if failing {
                    tracing::info!("Kafka answers again");
                    failing = false;
                }
                publish(&book.measured(&assigned));
            }
            Ok(Err(e)) => {
                if !failing {
                    tracing::warn!(error = %e, "Kafka did not answer the lag measurement");
                    failing = true;
                }
            }
            Err(e) => tracing::warn!(error = %e, "lag measurement failed"),
        }
    }
}

/// One measurement of the current assignment (blocking; see the module doc).
fn measure(consumer: &LogConsumer, probe_topic: &str) -> KafkaResult<Vec<PartitionOffsets>> {
    let assignment = consumer.assignment()?;
    if assignment.count() == 0 {
        consumer.fetch_metadata(Some(probe_topic), REQUEST_TIMEOUT)?;
        return Ok(Vec::new());
    }
    let committed = consumer.committed_offsets(assignment, REQUEST_TIMEOUT)?;
    let mut assigned = Vec::new();
    for element in committed.elements() {
        element.error()?;
        let (low, high) =
            consumer.fetch_watermarks(element.topic(), element.partition(), REQUEST_TIMEOUT)?;
        let committed = match element.offset() {
            Offset::Offset(offset) => Some(offset),
            _ => None,
        };
        assigned.push(PartitionOffsets {
            source: TopicPartition::new(element.topic(), element.partition()),
            low,
            high,
            committed,
        });
    }
    Ok(assigned)
}

fn publish(update: &LagUpdate) {
    for (source, lag) in &update.partitions {
        gauge!(
            names::CONSUMER_LAG,
            "topic" => source.topic.clone(),
            "partition" => source.partition.to_string()
        )
        .set(*lag as f64);
    }
    gauge!(names::CONSUMER_LAG_TOTAL).set(update.total as f64);
}
