//! The consumer-group worker: consume → validate → batch per partition → hand the batch to a
//! write task ([`crate::writer`]: intent, event-id filter, deduplicated insert) → commit once
//! it is written. The loop keeps reading while batches are written, at most one write in
//! flight per partition (so commits stay in offset order) and `max_inflight_batches` in all.
//! See docs/ingest.md.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use logbus_projections::events::parse_log_message;
use logbus_projections::identity::{IdentityRow, parse_identity_message};
use metrics::{counter, gauge};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::producer::FutureProducer;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::http::{Health, names};
use crate::store::{Intent, Store};
use crate::writer::{BACKOFF_MAX, BACKOFF_START, Batch, Writer, Written, sleep_or_stop};
use crate::{Error, IngestConfig};

/// A planned (replayed) batch waits this long for its recorded last offset before it is
/// flushed as an ordinary batch (the tail can only be missing if the log was truncated).
const PLANNED_BATCH_PATIENCE: Duration = Duration::from_secs(30);
const TICK: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------------
// Rebalance events, recorded by the consumer context and applied by the worker loop.

enum RebalanceEvent {
    Assign(Vec<(String, i32)>),
    Revoke(Vec<(String, i32)>),
}

#[derive(Default)]
struct Ctx {
    events: Mutex<Vec<RebalanceEvent>>,
}

fn partitions_of(list: &TopicPartitionList) -> Vec<(String, i32)> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let partitions = partitions_of(list);
            tracing::info!(?partitions, "partitions revoked");
            if let Ok(mut events) = self.events.lock() {
                events.push(RebalanceEvent::Revoke(partitions));
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let partitions = partitions_of(list);
            tracing::info!(?partitions, "partitions assigned");
            if let Ok(mut events) = self.events.lock() {
                events.push(RebalanceEvent::Assign(partitions));
            }
        }
    }
}

type Consumer_ = StreamConsumer<Ctx>;

// ---------------------------------------------------------------------------------------------
// Per-partition state.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Logs,
    Identity,
}

impl Kind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Logs => "logs",
            Kind::Identity => "identity",
        }
    }
}

struct PartitionState {
    kind: Kind,
    /// Intents beyond the resume offset; `None` until the first message after assignment.
    plan: Option<VecDeque<Intent>>,
    batch: Batch,
    /// Which assignment of the partition this state belongs to (see [`Written::generation`]).
    generation: u64,
}

// ---------------------------------------------------------------------------------------------

pub async fn run(
    config: IngestConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    validate(&config)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let shutdown_task = tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let result = run_inner(config, stop_rx).await;
    shutdown_task.abort();
    result
}

fn validate(config: &IngestConfig) -> Result<(), Error> {
    if config.batch_max_rows == 0 || config.batch_max_bytes == 0 || config.max_inflight_batches == 0
    {
        return Err(Error::Config(
            "batch-max-rows, batch-max-bytes and max-inflight-batches must be positive".into(),
        ));
    }
    if config.kafka.logs_topic == config.dlq_topic
        || config.kafka.identity_topic == config.dlq_topic
    {
        return Err(Error::Config(
            "the dead-letter topic must differ from the source topics".into(),
        ));
    }
    if config.kafka.logs_topic == config.kafka.identity_topic {
        return Err(Error::Config(
            "the logs and identity topics must differ".into(),
        ));
    }
    logbus_projections::validate_database_name(&config.clickhouse.database)?;
    if let Some(point) = &config.fail_point {
        parse_fail_point(point)?;
    }
    Ok(())
}

fn parse_fail_point(point: &str) -> Result<u64, Error> {
    point
        .strip_prefix("after-insert:")
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::Config(format!("unknown fail point {point:?}")))
}

async fn run_inner(config: IngestConfig, stop: watch::Receiver<bool>) -> Result<(), Error> {
    tracing::info!(?config, "starting ingest worker");
    let health = Health::new();
    let (http_addr, http_task) = crate::http::serve(config.http_addr, health.clone()).await?;
    tracing::info!(%http_addr, "serving /healthz, /readyz and /metrics");

    let root = config.clickhouse.server_client();
    // Migrate, waiting for ClickHouse if it is not up yet.
    let mut backoff = BACKOFF_START;
    loop {
        let migrated =
            logbus_projections::migrate(&root, &config.clickhouse.database, Default::default())
                .await;
        let stopping = *stop.borrow();
        match migrated {
            Ok(report) => {
                tracing::info!(applied = ?report.applied, "schema is up to date");
                break;
            }
            Err(logbus_projections::Error::ClickHouse(e)) if !stopping => {
                tracing::warn!(error = %e, "ClickHouse not reachable for migrations; retrying");
                counter!(names::RETRIES, "op" => "migrate").increment(1);
                sleep_or_stop(&stop, backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            Err(logbus_projections::Error::ClickHouse(_)) => {
                tracing::info!("shutdown requested before ClickHouse became reachable");
                http_task.abort();
                return Ok(());
            }
            Err(e) => {
                http_task.abort();
                return Err(e.into());
            }
        }
    }
    let store = Store::new(config.clickhouse.client(), config.dedup_window_secs);

    let mut consumer_config = ClientConfig::new();
    if let Ok(debug) = std::env::var("LOGBUS_KAFKA_DEBUG") {
        // librdkafka debug contexts, e.g. `cgrp,fetch` (logged through tracing).
        consumer_config.set("debug", debug);
    }
    let consumer: Consumer_ = consumer_config
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
        .create_with_context(Ctx::default())?;
    consumer.subscribe(&[&config.kafka.logs_topic, &config.kafka.identity_topic])?;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()?;

    health.set_ready(true);
    let fail_after = config
        .fail_point
        .as_deref()
        .map(parse_fail_point)
        .transpose()?;
    let config = Arc::new(config);
    let writer = Writer::new(
        config.clone(),
        store,
        producer,
        health.clone(),
        stop.clone(),
        fail_after,
    );
    let mut worker = Worker {
        config,
        consumer,
        writer,
        health: health.clone(),
        stop,
        partitions: HashMap::new(),
        generations: 0,
        inflight: FuturesUnordered::new(),
        writing: HashSet::new(),
    };
    let result = worker.run_loop().await;
    health.set_ready(false);
    http_task.abort();
    result
}

struct Worker {
    config: Arc<IngestConfig>,
    consumer: Consumer_,
    writer: Writer,
    health: Health,
    stop: watch::Receiver<bool>,
    partitions: HashMap<(String, i32), PartitionState>,
    /// Assignments so far: the next one's generation.
    generations: u64,
    /// Batches being written, each by its own task.
    inflight: FuturesUnordered<JoinHandle<Result<Written, Error>>>,
    /// Partitions with a batch in `inflight` (at most one each).
    writing: HashSet<(String, i32)>,
}

impl Worker {
    async fn run_loop(&mut self) -> Result<(), Error> {
        let mut stop = self.stop.clone();
        loop {
            tokio::select! {
                biased;
                () = async { let _ = stop.wait_for(|stopped| *stopped).await; } => break,
                Some(written) = self.inflight.next(), if !self.inflight.is_empty() => {
                    self.written(written)?;
                }
                message = self.consumer.recv() => {
                    let message = message.map(|m| m.detach());
                    self.apply_rebalance_events();
                    match message {
                        Ok(message) => self.on_message(message).await?,
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
        self.health.set_ready(false);
        self.writer.shutdown_deadline();
        self.apply_rebalance_events();
        self.flush_due(true).await?;
        while let Some(written) = self.inflight.next().await {
            self.written(written)?;
        }
        Ok(())
    }

    fn apply_rebalance_events(&mut self) {
        let events = match self.consumer.context().events.lock() {
            Ok(mut events) => std::mem::take(&mut *events),
            Err(_) => return,
        };
        for event in events {
            match event {
                RebalanceEvent::Revoke(partitions) => {
                    for key in partitions {
                        counter!(names::REBALANCES, "event" => "revoke").increment(1);
                        if let Some(state) = self.partitions.remove(&key)
                            && !state.batch.is_empty()
                        {
                            tracing::info!(
                                topic = key.0,
                                partition = key.1,
                                messages = state.batch.messages.len(),
                                "dropping the uncommitted batch of a revoked partition; its next owner replays it"
                            );
                        }
                    }
                }
                RebalanceEvent::Assign(partitions) => {
                    for key in partitions {
                        counter!(names::REBALANCES, "event" => "assign").increment(1);
                        let kind = if key.0 == self.config.kafka.identity_topic {
                            Kind::Identity
                        } else {
                            Kind::Logs
                        };
                        self.generations += 1;
                        self.partitions.insert(
                            key,
                            PartitionState {
                                kind,
                                plan: None,
                                batch: Batch::default(),
                                generation: self.generations,
                            },
                        );
                    }
                }
            }
        }
    }

    async fn on_message(&mut self, message: rdkafka::message::OwnedMessage) -> Result<(), Error> {
        let key = (message.topic().to_owned(), message.partition());
        let offset = message.offset();
        let Some(kind) = self.partitions.get(&key).map(|s| s.kind) else {
            // Fetched before its partition was revoked: not ours any more.
            return Ok(());
        };
        counter!(names::MESSAGES_IN, "topic" => kind.label()).increment(1);

        if kind == Kind::Logs {
            // Load the plan on the first message after assignment.
            if self.partitions.get(&key).is_some_and(|s| s.plan.is_none()) {
                let plan = self.load_plan(&key, offset).await?;
                if let Some(state) = self.partitions.get_mut(&key) {
                    state.plan = Some(plan);
                }
            }
            // Cut at planned boundaries.
            let must_flush = self.partitions.get_mut(&key).is_some_and(|state| {
                let plan = state.plan.get_or_insert_default();
                while plan.front().is_some_and(|i| i.last_offset < offset) {
                    plan.pop_front();
                }
                let batch = &state.batch;
                !batch.is_empty()
                    && match &batch.planned {
                        Some(intent) => offset > intent.last_offset,
                        None => plan.front().is_some_and(|i| offset >= i.first_offset),
                    }
            });
            if must_flush {
                self.flush_partition(&key).await?;
            }
        }

        let Some(state) = self.partitions.get_mut(&key) else {
            return Ok(());
        };
        let batch = &mut state.batch;
        if batch.is_empty() {
            batch.first_offset = offset;
            batch.started = Some(Instant::now());
            if let Some(plan) = &mut state.plan
                && let Some(intent) = plan.front()
                && intent.first_offset <= offset
                && offset <= intent.last_offset
            {
                if intent.first_offset != offset {
                    // Only possible if the log was truncated under us: the event-id filter
                    // still keeps the replay free of duplicates.
                    tracing::warn!(
                        topic = key.0,
                        partition = key.1,
                        offset,
                        intent_first = intent.first_offset,
                        "replay starts inside a recorded batch; cannot reproduce its boundaries"
                    );
                    plan.pop_front();
                } else {
                    counter!(names::REPLAYED_BATCHES).increment(1);
                    batch.planned = Some(intent.clone());
                }
            }
        }
        batch.last_offset = offset;
        let payload = message.payload().unwrap_or_default().to_vec();
        let message_key = message.key().map(<[u8]>::to_vec);
        batch.bytes += payload.len();
        let index = batch.messages.len() as u32;

        let mut dead = Vec::new();
        match kind {
            Kind::Logs => match parse_log_message(
                &payload,
                &key.0,
                key.1,
                offset,
                self.config.max_event_bytes,
            ) {
                Err(e) => dead.push((None, payload.clone(), e)),
                Ok(events) => {
                    counter!(names::EVENTS_IN).increment(events.len() as u64);
                    for event in events {
                        match event.row {
                            Ok(row) => {
                                batch.rows.push(row);
                                batch.sources.push((index, event.index.unwrap_or(0) as u32));
                            }
                            Err(e) => dead.push((event.index, event.raw.to_vec(), e)),
                        }
                    }
                }
            },
            Kind::Identity => match parse_identity_message(&payload, self.config.max_event_bytes) {
                Ok(IdentityRow::User(row)) => batch.users.push(row),
                Ok(IdentityRow::Token(row)) => batch.tokens.push(row),
                Err(e) => dead.push((None, payload.clone(), e)),
            },
        }
        batch.messages.push((offset, message_key.clone(), payload));
        for (source_index, raw, rejection) in dead {
            let class = rejection.kind.as_str();
            let mut headers = vec![
                ("reason", rejection.reason),
                ("reason_class", class.to_owned()),
                ("source_topic", key.0.clone()),
                ("source_partition", key.1.to_string()),
                ("source_offset", offset.to_string()),
            ];
            if let Some(i) = source_index {
                headers.push(("source_index", i.to_string()));
            }
            let letter = self
                .writer
                .send_dead_letter(message_key.clone(), raw, headers, class);
            if let Some(state) = self.partitions.get_mut(&key) {
                state.batch.dead.push(letter);
            }
        }

        // Size-based flush (a planned batch is cut only at its recorded end).
        let flush = self.partitions.get(&key).is_some_and(|state| {
            let batch = &state.batch;
            match &batch.planned {
                Some(intent) => offset >= intent.last_offset,
                None => {
                    batch.rows.len() + batch.users.len() + batch.tokens.len()
                        >= self.config.batch_max_rows
                        || batch.bytes >= self.config.batch_max_bytes
                }
            }
        });
        if flush {
            self.flush_partition(&key).await?;
        }
        Ok(())
    }

    async fn load_plan(
        &mut self,
        key: &(String, i32),
        from_offset: i64,
    ) -> Result<VecDeque<Intent>, Error> {
        let store = self.writer.store().clone();
        let group = self.config.group_id.clone();
        let intents = self
            .writer
            .retry_or_fail("load_intents", || {
                store.load_intents(&group, &key.0, key.1, from_offset)
            })
            .await?;
        if !intents.is_empty() {
            tracing::info!(
                topic = key.0,
                partition = key.1,
                from_offset,
                batches = intents.len(),
                "replaying recorded batches at their recorded boundaries"
            );
        }
        Ok(intents.into())
    }

    /// While every write slot is busy, or a partition's previous batch is still being
    /// written, batches are not due by age: they grow (up to the size limits) until a slot is
    /// free. Under load that makes batches big, and a few big inserts cost ClickHouse far less
    /// than many small ones; at lower rates the flush interval still bounds freshness.
    async fn flush_due(&mut self, all: bool) -> Result<(), Error> {
        if !all && self.inflight.len() >= self.config.max_inflight_batches {
            return Ok(());
        }
        let interval = Duration::from_millis(self.config.flush_interval_ms);
        let mut due: Vec<(Instant, (String, i32))> = self
            .partitions
            .iter()
            .filter(|(key, state)| {
                let batch = &state.batch;
                if batch.is_empty() {
                    return false;
                }
                if all {
                    return true;
                }
                if self.writing.contains(*key) {
                    return false;
                }
                let age = batch.started.map_or(Duration::ZERO, |s| s.elapsed());
                match batch.planned {
                    Some(_) => age >= PLANNED_BATCH_PATIENCE,
                    None => age >= interval,
                }
            })
            .map(|(key, state)| {
                let started = state.batch.started.unwrap_or_else(Instant::now);
                (started, key.clone())
            })
            .collect();
        due.sort();
        for (_, key) in due {
            if !all && self.inflight.len() >= self.config.max_inflight_batches {
                break;
            }
            self.flush_partition(&key).await?;
        }
        Ok(())
    }

    /// Hands the partition's batch to a write task. Waits first for the partition's previous
    /// write (commits stay in offset order) and for a free slot among `max_inflight_batches`:
    /// that wait is what bounds memory while ClickHouse is slow or down.
    async fn flush_partition(&mut self, key: &(String, i32)) -> Result<(), Error> {
        while self.writing.contains(key) || self.inflight.len() >= self.config.max_inflight_batches
        {
            match self.inflight.next().await {
                Some(written) => self.written(written)?,
                None => break,
            }
        }
        let Some(state) = self.partitions.get_mut(key) else {
            return Ok(());
        };
        let batch = std::mem::take(&mut state.batch);
        if batch.is_empty() {
            return Ok(());
        }
        if let (Some(intent), Some(plan)) = (&batch.planned, state.plan.as_mut())
            && plan
                .front()
                .is_some_and(|i| i.first_offset == intent.first_offset)
        {
            plan.pop_front();
        }
        let write = self
            .writer
            .clone()
            .write(key.clone(), state.kind, state.generation, batch);
        self.writing.insert(key.clone());
        self.inflight.push(tokio::spawn(write));
        Ok(())
    }

    /// A write task finished: commit its batch, unless the partition was revoked meanwhile.
    fn written(
        &mut self,
        result: Result<Result<Written, Error>, tokio::task::JoinError>,
    ) -> Result<(), Error> {
        let written = result??;
        self.writing.remove(&written.key);
        // A revocation seen by the last poll must be known before deciding to commit.
        self.apply_rebalance_events();
        let current = self
            .partitions
            .get(&written.key)
            .is_some_and(|state| state.generation == written.generation);
        if current {
            self.commit(&written.key, written.next_offset);
        } else {
            tracing::info!(
                topic = written.key.0,
                partition = written.key.1,
                next_offset = written.next_offset,
                "partition revoked while its batch was written: not committing; its next owner replays it"
            );
        }
        Ok(())
    }

    fn commit(&self, key: &(String, i32), next_offset: i64) {
        let mut list = TopicPartitionList::new();
        if let Err(e) =
            list.add_partition_offset(&key.0, key.1, rdkafka::Offset::Offset(next_offset))
        {
            tracing::warn!(error = %e, "cannot build the commit list");
            return;
        }
        match self.consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => {
                gauge!(names::COMMITTED_OFFSET, "topic" => key.0.clone(), "partition" => key.1.to_string())
                    .set(next_offset as f64);
            }
            Err(e) => {
                // Not fatal: the batch is in ClickHouse and recorded; whoever owns the
                // partition next replays it at the same boundaries and it is deduplicated.
                counter!(names::COMMIT_ERRORS).increment(1);
                tracing::warn!(topic = key.0, partition = key.1, next_offset, error = %e, "offset commit failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_points_parse() {
        assert_eq!(parse_fail_point("after-insert:3").ok(), Some(3));
        assert!(parse_fail_point("after-insert:0").is_err());
        assert!(parse_fail_point("somewhere").is_err());
    }

    #[test]
    fn config_validation() {
        let mut config = IngestConfig::defaults();
        assert!(validate(&config).is_ok());
        config.dlq_topic = config.kafka.logs_topic.clone();
        assert!(validate(&config).is_err());
        let mut config = IngestConfig::defaults();
        config.batch_max_rows = 0;
        assert!(validate(&config).is_err());
        let mut config = IngestConfig::defaults();
        config.max_inflight_batches = 0;
        assert!(validate(&config).is_err());
    }
}
