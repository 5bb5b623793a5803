//! The consume loop: poll a message, add it to its partition's batch ([`crate::batch`],
//! cut at replay boundaries by [`crate::plan`]), hand full or due batches to write tasks
//! ([`crate::writer`]) and commit each once it is written ([`crate::consumer`]).
//!
//! The loop keeps reading while batches are written: at most one write in flight per
//! partition (so commits stay in offset order) and `max_inflight_batches` in all. Every rule
//! about what goes into a batch and where it is cut lives in the pure modules; this one only
//! sequences them with the I/O.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use metrics::counter;
use rdkafka::Message;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::batch::{Batch, Limits};
use crate::consumer::{Committer, LogConsumer, RebalanceEvent};
use crate::dead_letter::{DeadLetterQueue, SentLetter};
use crate::http::{Phase, Readiness};
use crate::metrics::names;
use crate::plan::{Plan, Start};
use crate::retry::Retrier;
use crate::source::{Kind, SourceMessage, TopicPartition};
use crate::store::Store;
use crate::writer::{Flush, Writer, Written};
use crate::{Error, IngestConfig};

const TICK: Duration = Duration::from_millis(50);

fn limits(config: &IngestConfig) -> Limits {
    Limits {
        max_rows: config.batch_max_rows,
        max_bytes: config.batch_max_bytes,
        max_event_bytes: config.max_event_bytes,
        max_events_per_message: config.max_events_per_message,
        created_at: config.created_at_window(),
        flush_interval: Duration::from_millis(config.flush_interval_ms),
    }
}

struct PartitionState {
    kind: Kind,
    /// Intents beyond the resume offset; `None` until the first message after assignment.
    plan: Option<Plan>,
    batch: Batch,
    /// Dead letters sent while the batch was read, awaited before its commit.
    letters: Vec<SentLetter>,
    /// Which assignment of the partition this state belongs to (see [`Written::generation`]).
    generation: u64,
}

/// The I/O the loop drives, built by [`crate::Worker::run`].
pub(crate) struct Parts {
    pub(crate) config: Arc<IngestConfig>,
    pub(crate) consumer: Arc<LogConsumer>,
    pub(crate) rebalances: mpsc::UnboundedReceiver<RebalanceEvent>,
    pub(crate) store: Store,
    pub(crate) dlq: DeadLetterQueue,
    pub(crate) writer: Writer,
    pub(crate) retrier: Retrier,
    pub(crate) readiness: Readiness,
    pub(crate) stop: watch::Receiver<bool>,
}

pub(crate) struct ConsumeLoop {
    parts: Parts,
    limits: Limits,
    partitions: HashMap<TopicPartition, PartitionState>,
    /// Assignments so far: the next one's generation.
    generations: u64,
    /// Batches being written, each by its own task.
    inflight: FuturesUnordered<JoinHandle<Result<Written, Error>>>,
    /// Partitions with a batch in `inflight` (at most one each).
    writing: HashSet<TopicPartition>,
    committer: Committer,
}

impl ConsumeLoop {
    pub(crate) fn new(parts: Parts) -> Self {
        Self {
            limits: limits(&parts.config),
            partitions: HashMap::new(),
            generations: 0,
            inflight: FuturesUnordered::new(),
            writing: HashSet::new(),
            committer: Committer::start(parts.consumer.clone()),
            parts,
        }
    }

    /// Consumes until shutdown is requested; then stops fetching, flushes every partition,
    /// waits for the writes and commits.
    pub(crate) async fn run(mut self) -> Result<(), Error> {
        let mut stop = self.parts.stop.clone();
        loop {
            tokio::select! {
                biased;
                () = async { let _ = stop.wait_for(|stopped| *stopped).await; } => break,
                Some(written) = self.inflight.next(), if !self.inflight.is_empty() => {
                    self.written(written)?;
                }
                message = self.parts.consumer.recv() => {
                    let message = message.map(|m| m.detach());
                    self.apply_rebalance_events();
                    match message {
                        Ok(message) => self.on_message(&message).await?,
                        Err(e) => {
                            tracing::warn!(error = %e, "consumer error");
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
                _ = tokio::time::sleep(TICK) => self.apply_rebalance_events(),
            }
            self.flush_due(false).await?;
        }
        tracing::info!("shutdown requested: flushing and committing");
        self.parts.readiness.set_phase(Phase::Stopping);
        self.parts.retrier.shutdown_deadline();
        self.apply_rebalance_events();
        self.flush_due(true).await?;
        while let Some(written) = self.inflight.next().await {
            self.written(written)?;
        }
        self.committer.finish().await;
        Ok(())
    }

    fn apply_rebalance_events(&mut self) {
        while let Ok(event) = self.parts.rebalances.try_recv() {
            match event {
                RebalanceEvent::Revoke(partitions) => {
                    for source in partitions {
                        counter!(names::REBALANCES, "event" => "revoke").increment(1);
                        if let Some(state) = self.partitions.remove(&source)
                            && !state.batch.is_empty()
                        {
                            tracing::info!(
                                %source,
                                messages = state.batch.messages.len(),
                                "dropping the uncommitted batch of a revoked partition; its next owner replays it"
                            );
                        }
                    }
                }
                RebalanceEvent::Assign(partitions) => {
                    for source in partitions {
                        counter!(names::REBALANCES, "event" => "assign").increment(1);
                        let kind = if source.topic == self.parts.config.kafka.identity_topic {
                            Kind::Identity
                        } else {
                            Kind::Logs
                        };
                        self.generations += 1;
                        self.partitions.insert(
                            source,
                            PartitionState {
                                kind,
                                plan: None,
                                batch: Batch::default(),
                                letters: Vec::new(),
                                generation: self.generations,
                            },
                        );
                    }
                }
            }
        }
    }

    async fn on_message(&mut self, message: &impl Message) -> Result<(), Error> {
        let source = TopicPartition::of(message);
        let offset = message.offset();
        let Some(kind) = self.partitions.get(&source).map(|s| s.kind) else {
            // Fetched before its partition was revoked: not ours any more.
            return Ok(());
        };
        counter!(names::MESSAGES_IN, "topic" => kind.label()).increment(1);

        if kind == Kind::Logs {
            if self
                .partitions
                .get(&source)
                .is_some_and(|s| s.plan.is_none())
            {
                let plan = self.load_plan(&source, offset).await?;
                if let Some(state) = self.partitions.get_mut(&source) {
                    state.plan = Some(plan);
                }
            }
            let must_cut = self.partitions.get_mut(&source).is_some_and(|state| {
                let plan = state.plan.get_or_insert_default();
                plan.must_cut_before(&state.batch, offset)
            });
            if must_cut {
                self.flush_partition(&source).await?;
            }
        }

        let Some(state) = self.partitions.get_mut(&source) else {
            return Ok(());
        };
        let mut planned = None;
        if state.batch.is_empty()
            && let Some(plan) = &mut state.plan
        {
            match plan.start(offset) {
                Start::Unplanned => {}
                Start::Planned(intent) => {
                    counter!(names::REPLAYED_BATCHES).increment(1);
                    planned = Some(intent);
                }
                Start::InsideRecorded { intent_first } => tracing::warn!(
                    %source,
                    offset,
                    intent_first,
                    "replay starts inside a recorded batch; cannot reproduce its boundaries"
                ),
            }
        }
        let message = SourceMessage::of(message);
        let added = state.batch.add(
            &source,
            kind,
            message,
            planned,
            &self.limits,
            Instant::now(),
        );
        if kind == Kind::Logs {
            counter!(names::EVENTS_IN).increment(added.events as u64);
        }
        for letter in added.dead {
            state.letters.push(self.parts.dlq.send(letter));
        }
        if state.batch.is_full(&self.limits) {
            self.flush_partition(&source).await?;
        }
        Ok(())
    }

    async fn load_plan(&self, source: &TopicPartition, from_offset: i64) -> Result<Plan, Error> {
        let store = &self.parts.store;
        let group = &self.parts.config.group_id;
        let intents = self
            .parts
            .retrier
            .retry_or_fail("load_intents", || {
                store.load_intents(group, source, from_offset)
            })
            .await?;
        if !intents.is_empty() {
            tracing::info!(
                %source,
                from_offset,
                batches = intents.len(),
                "replaying recorded batches at their recorded boundaries"
            );
        }
        Ok(Plan::new(intents))
    }

    /// While every write slot is busy, or a partition's previous batch is still being
    /// written, batches are not due by age: they grow (up to the size limits) until a slot is
    /// free. Under load that makes batches big, and a few big inserts cost ClickHouse far less
    /// than many small ones; at lower rates the flush interval still bounds freshness.
    async fn flush_due(&mut self, all: bool) -> Result<(), Error> {
        let slots = self.parts.config.max_inflight_batches;
        if !all && self.inflight.len() >= slots {
            return Ok(());
        }
        let now = Instant::now();
        let mut due: Vec<(Instant, TopicPartition)> = self
            .partitions
            .iter()
            .filter(|(source, state)| {
                if all {
                    return !state.batch.is_empty();
                }
                !self.writing.contains(*source) && state.batch.is_due(now, &self.limits)
            })
            .map(|(source, state)| (state.batch.started.unwrap_or(now), source.clone()))
            .collect();
        due.sort();
        for (_, source) in due {
            if !all && self.inflight.len() >= slots {
                break;
            }
            self.flush_partition(&source).await?;
        }
        Ok(())
    }

    /// Hands the partition's batch to a write task. Waits first for the partition's previous
    /// write (commits stay in offset order) and for a free slot among `max_inflight_batches`:
    /// that wait is what bounds memory while ClickHouse is slow or down.
    async fn flush_partition(&mut self, source: &TopicPartition) -> Result<(), Error> {
        while self.writing.contains(source)
            || self.inflight.len() >= self.parts.config.max_inflight_batches
        {
            match self.inflight.next().await {
                Some(written) => self.written(written)?,
                None => break,
            }
        }
        let Some(state) = self.partitions.get_mut(source) else {
            return Ok(());
        };
        let batch = std::mem::take(&mut state.batch);
        if batch.is_empty() {
            return Ok(());
        }
        if let Some(plan) = state.plan.as_mut() {
            plan.flushed(&batch);
        }
        let flush = Flush {
            source: source.clone(),
            kind: state.kind,
            generation: state.generation,
            batch,
            letters: std::mem::take(&mut state.letters),
        };
        self.writing.insert(source.clone());
        self.inflight
            .push(tokio::spawn(self.parts.writer.clone().write(flush)));
        Ok(())
    }

    /// A write task finished: commit its batch, unless the partition was revoked meanwhile.
    fn written(
        &mut self,
        result: Result<Result<Written, Error>, tokio::task::JoinError>,
    ) -> Result<(), Error> {
        let written = result??;
        self.writing.remove(&written.source);
        // A revocation seen by the last poll must be known before deciding to commit.
        self.apply_rebalance_events();
        let current = self
            .partitions
            .get(&written.source)
            .is_some_and(|state| state.generation == written.generation);
        if current {
            self.committer.commit(written.source, written.next_offset);
        } else {
            tracing::info!(
                source = %written.source,
                next_offset = written.next_offset,
                "partition revoked while its batch was written: not committing; its next owner replays it"
            );
        }
        Ok(())
    }
}
