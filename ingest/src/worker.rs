//! The consumer-group worker: consume → validate → batch per partition → record intent →
//! filter already-stored event ids → deduplicated insert → commit. See docs/ingest.md.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clickhouse::Client;
use logbus_projections::events::parse_log_message;
use logbus_projections::identity::{IdentityEvent, parse_identity_event};
use logbus_projections::rows::{LogRow, TokenRow, UserRow};
use metrics::{counter, gauge, histogram};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::http::{Health, names};
use crate::store::{Failure, Intent, Store};
use crate::{Error, IngestConfig};

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
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
enum Kind {
    Logs,
    Identity,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Logs => "logs",
            Kind::Identity => "identity",
        }
    }
}

/// A dead letter on its way to the DLQ topic: kept until the broker acknowledged it.
struct DeadLetter {
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    delivery: Option<DeliveryFuture>,
}

#[derive(Default)]
struct Batch {
    first_offset: i64,
    last_offset: i64,
    started: Option<Instant>,
    bytes: usize,
    /// Offsets and payloads of the messages, to hash the batch and to dead-letter rows
    /// that ClickHouse rejects.
    messages: Vec<(i64, Option<Vec<u8>>, Vec<u8>)>,
    rows: Vec<LogRow>,
    /// For each row: index into `messages` and position in its message.
    sources: Vec<(u32, u32)>,
    users: Vec<UserRow>,
    tokens: Vec<TokenRow>,
    dead: Vec<DeadLetter>,
    planned: Option<Intent>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

struct PartitionState {
    kind: Kind,
    /// Intents beyond the resume offset; `None` until the first message after assignment.
    plan: Option<VecDeque<Intent>>,
    batch: Batch,
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
    if config.batch_max_rows == 0 || config.batch_max_bytes == 0 {
        return Err(Error::Config(
            "batch-max-rows and batch-max-bytes must be positive".into(),
        ));
    }
    if config.logs_topic == config.dlq_topic || config.identity_topic == config.dlq_topic {
        return Err(Error::Config(
            "the dead-letter topic must differ from the source topics".into(),
        ));
    }
    if config.logs_topic == config.identity_topic {
        return Err(Error::Config(
            "the logs and identity topics must differ".into(),
        ));
    }
    logbus_projections::validate_database_name(&config.clickhouse_database)?;
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

    let mut root = Client::default()
        .with_url(&config.clickhouse_url)
        .with_user(&config.clickhouse_user);
    if !config.clickhouse_password.is_empty() {
        root = root.with_password(&config.clickhouse_password);
    }
    // Migrate, waiting for ClickHouse if it is not up yet.
    let mut backoff = BACKOFF_START;
    loop {
        let migrated =
            logbus_projections::migrate(&root, &config.clickhouse_database, Default::default())
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
    let store = Store::new(
        root.with_database(&config.clickhouse_database),
        config.dedup_window_secs,
    );

    let mut consumer_config = ClientConfig::new();
    if let Ok(debug) = std::env::var("LOGBUS_KAFKA_DEBUG") {
        // librdkafka debug contexts, e.g. `cgrp,fetch` (logged through tracing).
        consumer_config.set("debug", debug);
    }
    let consumer: Consumer_ = consumer_config
        .set("bootstrap.servers", &config.brokers)
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
        .set("queued.max.messages.kbytes", "32768")
        .set("fetch.max.bytes", "16777216")
        .set("max.partition.fetch.bytes", "4194304")
        .create_with_context(Ctx::default())?;
    consumer.subscribe(&[&config.logs_topic, &config.identity_topic])?;

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &config.brokers)
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
    let mut worker = Worker {
        config,
        store,
        consumer,
        producer,
        health: health.clone(),
        stop,
        stop_deadline: std::sync::OnceLock::new(),
        partitions: HashMap::new(),
        inserts: 0,
        fail_after,
    };
    let result = worker.run_loop().await;
    health.set_ready(false);
    http_task.abort();
    result
}

struct Worker {
    config: IngestConfig,
    store: Store,
    consumer: Consumer_,
    producer: FutureProducer,
    health: Health,
    stop: watch::Receiver<bool>,
    stop_deadline: std::sync::OnceLock<Instant>,
    partitions: HashMap<(String, i32), PartitionState>,
    inserts: u64,
    fail_after: Option<u64>,
}

enum RetryError {
    Data(clickhouse::error::Error),
    GaveUp,
}

impl Worker {
    async fn run_loop(&mut self) -> Result<(), Error> {
        let mut stop = self.stop.clone();
        loop {
            tokio::select! {
                biased;
                () = async { let _ = stop.wait_for(|stopped| *stopped).await; } => break,
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
        self.shutdown_deadline();
        self.apply_rebalance_events();
        self.flush_due(true).await?;
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
                        let kind = if key.0 == self.config.identity_topic {
                            Kind::Identity
                        } else {
                            Kind::Logs
                        };
                        self.partitions.insert(
                            key,
                            PartitionState {
                                kind,
                                plan: None,
                                batch: Batch::default(),
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
                Err(e) => dead.push((None, payload.clone(), "unreadable", e.0)),
                Ok(events) => {
                    let is_array = payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
                    counter!(names::EVENTS_IN).increment(events.len() as u64);
                    for event in events {
                        match event.row {
                            Ok(row) => {
                                batch.rows.push(row);
                                batch.sources.push((index, event.index as u32));
                            }
                            Err(e) => {
                                let class = if e.0.contains("over the limit") {
                                    "oversized"
                                } else {
                                    "invalid_event"
                                };
                                dead.push((
                                    is_array.then_some(event.index),
                                    event.raw.to_vec(),
                                    class,
                                    e.0,
                                ));
                            }
                        }
                    }
                }
            },
            Kind::Identity => {
                let parsed = if payload.len() > self.config.max_event_bytes {
                    Err((
                        "oversized",
                        format!(
                            "event is {} bytes, over the limit of {}",
                            payload.len(),
                            self.config.max_event_bytes
                        ),
                    ))
                } else {
                    parse_identity_event(&payload)
                        .and_then(|event| match event {
                            IdentityEvent::User(user) => user.into_row().map(|row| {
                                batch.users.push(row);
                            }),
                            IdentityEvent::Token(token) => token.into_row().map(|row| {
                                batch.tokens.push(row);
                            }),
                        })
                        .map_err(|e| ("invalid_identity", e.0))
                };
                if let Err((class, reason)) = parsed {
                    dead.push((None, payload.clone(), class, reason));
                }
            }
        }
        batch.messages.push((offset, message_key.clone(), payload));
        for (source_index, raw, class, reason) in dead {
            let mut headers = vec![
                ("reason", reason),
                ("reason_class", class.to_owned()),
                ("source_topic", key.0.clone()),
                ("source_partition", key.1.to_string()),
                ("source_offset", offset.to_string()),
            ];
            if let Some(i) = source_index {
                headers.push(("source_index", i.to_string()));
            }
            let letter = self.send_dead_letter(message_key.clone(), raw, headers, class);
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

    fn send_dead_letter(
        &self,
        key: Option<Vec<u8>>,
        payload: Vec<u8>,
        headers: Vec<(&'static str, String)>,
        class: &'static str,
    ) -> DeadLetter {
        counter!(names::DEAD_LETTERS, "reason" => class).increment(1);
        let mut letter = DeadLetter {
            key,
            payload,
            headers,
            delivery: None,
        };
        letter.delivery = self.enqueue(&letter);
        letter
    }

    fn enqueue(&self, letter: &DeadLetter) -> Option<DeliveryFuture> {
        let mut headers = OwnedHeaders::new_with_capacity(letter.headers.len());
        for (key, value) in &letter.headers {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
        let mut record = FutureRecord::to(&self.config.dlq_topic)
            .payload(&letter.payload)
            .headers(headers);
        if let Some(key) = &letter.key {
            record = record.key(key);
        }
        // A full local queue is handled when the batch is flushed (re-sent and awaited).
        self.producer.send_result(record).ok()
    }

    async fn load_plan(
        &mut self,
        key: &(String, i32),
        from_offset: i64,
    ) -> Result<VecDeque<Intent>, Error> {
        let store = self.store.clone();
        let group = self.config.group_id.clone();
        let plan = self
            .retry("load_intents", || {
                store.load_intents(&group, &key.0, key.1, from_offset)
            })
            .await;
        match plan {
            Ok(intents) => {
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
            Err(RetryError::Data(e)) => Err(e.into()),
            Err(RetryError::GaveUp) => Err(self.gave_up()),
        }
    }

    /// Starts (once) the shutdown clock and returns its deadline.
    fn shutdown_deadline(&self) -> Instant {
        *self
            .stop_deadline
            .get_or_init(|| Instant::now() + Duration::from_millis(self.config.shutdown_timeout_ms))
    }

    /// The shutdown deadline, if shutdown was requested (also while a retry loop runs, so
    /// that SIGTERM is honoured during a ClickHouse outage).
    fn stopping(&self) -> Option<Instant> {
        let requested = *self.stop.borrow();
        requested.then(|| self.shutdown_deadline())
    }

    fn gave_up(&self) -> Error {
        Error::ShutdownTimeout(Duration::from_millis(self.config.shutdown_timeout_ms))
    }

    /// Retries transient ClickHouse failures with capped exponential backoff. While it
    /// retries, nothing is fetched (the loop does not poll), so memory stays bounded.
    async fn retry<T, F, Fut>(&self, op: &'static str, mut f: F) -> Result<T, RetryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = clickhouse::error::Result<T>>,
    {
        let mut backoff = BACKOFF_START;
        let mut failing = false;
        loop {
            match f().await {
                Ok(value) => {
                    if failing {
                        tracing::info!(op, "ClickHouse is back");
                        gauge!(names::PAUSED).set(0.0);
                        if self.stopping().is_none() {
                            self.health.set_ready(true);
                        }
                    }
                    return Ok(value);
                }
                Err(e) => {
                    if crate::store::classify(&e) == Failure::Data {
                        return Err(RetryError::Data(e));
                    }
                    if let Some(deadline) = self.stopping()
                        && Instant::now() + backoff > deadline
                    {
                        tracing::error!(op, error = %e, "giving up at shutdown");
                        return Err(RetryError::GaveUp);
                    }
                    if !failing {
                        failing = true;
                        gauge!(names::PAUSED).set(1.0);
                        self.health.set_ready(false);
                    }
                    tracing::warn!(op, error = %e, retry_in = ?backoff, "ClickHouse call failed");
                    counter!(names::RETRIES, "op" => op).increment(1);
                    if self.stopping().is_some() {
                        tokio::time::sleep(backoff).await;
                    } else {
                        sleep_or_stop(&self.stop, backoff).await;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Flushes every partition whose batch is due (or all with `all`).
    async fn flush_due(&mut self, all: bool) -> Result<(), Error> {
        let interval = Duration::from_millis(self.config.flush_interval_ms);
        let due: Vec<(String, i32)> = self
            .partitions
            .iter()
            .filter(|(_, state)| {
                let batch = &state.batch;
                if batch.is_empty() {
                    return false;
                }
                if all {
                    return true;
                }
                let age = batch.started.map_or(Duration::ZERO, |s| s.elapsed());
                match batch.planned {
                    Some(_) => age >= PLANNED_BATCH_PATIENCE,
                    None => age >= interval,
                }
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in due {
            self.flush_partition(&key).await?;
        }
        Ok(())
    }

    async fn flush_partition(&mut self, key: &(String, i32)) -> Result<(), Error> {
        let Some(state) = self.partitions.get_mut(key) else {
            return Ok(());
        };
        let mut batch = std::mem::take(&mut state.batch);
        let kind = state.kind;
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
        let started = Instant::now();
        match kind {
            Kind::Logs => self.write_logs(key, &mut batch).await?,
            Kind::Identity => self.write_identity(key, &mut batch).await?,
        }
        self.await_dead_letters(&mut batch).await?;
        self.commit(key, batch.last_offset + 1);
        histogram!(names::FLUSH_SECONDS, "topic" => kind.label())
            .record(started.elapsed().as_secs_f64());
        counter!(names::BATCHES, "topic" => kind.label()).increment(1);
        Ok(())
    }

    async fn write_logs(&mut self, key: &(String, i32), batch: &mut Batch) -> Result<(), Error> {
        let batch_id = batch_id(key, batch);
        if batch
            .planned
            .as_ref()
            .is_some_and(|i| i.batch_id != batch_id)
        {
            tracing::warn!(
                topic = key.0,
                partition = key.1,
                first_offset = batch.first_offset,
                "recorded batch has other content (topic recreated?): treated as a new batch"
            );
        }
        // Duplicates inside the batch: keep the first copy.
        let received = batch.rows.len();
        let mut seen = HashSet::with_capacity(received);
        let mut rows = Vec::with_capacity(batch.rows.len());
        let mut sources = Vec::with_capacity(batch.rows.len());
        for (mut row, source) in std::mem::take(&mut batch.rows)
            .into_iter()
            .zip(std::mem::take(&mut batch.sources))
        {
            if seen.insert(row.event_id) {
                row.ingest_batch = batch_id;
                rows.push(row);
                sources.push(source);
            }
        }
        let mut duplicates = (received - rows.len()) as u64;
        if rows.is_empty() {
            return Ok(());
        }

        let already_recorded = batch
            .planned
            .as_ref()
            .is_some_and(|i| i.batch_id == batch_id && i.last_offset == batch.last_offset);
        if !already_recorded {
            let intent = Intent {
                consumer_group: self.config.group_id.clone(),
                topic: key.0.clone(),
                partition: key.1,
                first_offset: batch.first_offset,
                last_offset: batch.last_offset,
                batch_id,
                rows: rows.len() as u32,
            };
            let store = self.store.clone();
            match self
                .retry("record_intent", || store.record_intent(&intent))
                .await
            {
                Ok(()) => {}
                Err(RetryError::Data(e)) => return Err(e.into()),
                Err(RetryError::GaveUp) => return Err(self.gave_up()),
            }
        }

        let store = self.store.clone();
        let existing = match self
            .retry("existing_event_ids", || {
                store.existing_event_ids(&rows, Some(batch_id))
            })
            .await
        {
            Ok(existing) => existing,
            Err(RetryError::Data(e)) => return Err(e.into()),
            Err(RetryError::GaveUp) => return Err(self.gave_up()),
        };
        if !existing.is_empty() {
            let mut kept_rows = Vec::with_capacity(rows.len());
            let mut kept_sources = Vec::with_capacity(rows.len());
            for (row, source) in rows.into_iter().zip(sources) {
                if existing.contains(&row.event_id) {
                    duplicates += 1;
                } else {
                    kept_rows.push(row);
                    kept_sources.push(source);
                }
            }
            rows = kept_rows;
            sources = kept_sources;
        }
        if duplicates > 0 {
            counter!(names::DUPLICATES_DROPPED).increment(duplicates);
        }
        if rows.is_empty() {
            return Ok(());
        }

        let token = format!("logbus-{batch_id:016x}");
        let written = self
            .insert_splitting(key, batch, &rows, &sources, token)
            .await?;
        counter!(names::ROWS_WRITTEN).increment(written);
        self.inserts += 1;
        if self.fail_after.is_some_and(|n| self.inserts >= n) {
            tracing::error!(
                inserts = self.inserts,
                "fail point after-insert reached: aborting before commit"
            );
            std::process::abort();
        }
        Ok(())
    }

    /// Inserts `rows`; when ClickHouse rejects the data itself, halves the block until the
    /// rejected rows are isolated and dead-lettered.
    ///
    /// A rejected multi-block insert may have landed some of its blocks, so every part of a
    /// split is first filtered against *all* stored event ids (its own batch's included) and
    /// inserted under a token derived from the ids it still holds: a replay that reaches the
    /// same part with the same remaining rows reuses the token (and is dropped if it landed);
    /// a part with other remaining rows gets another token.
    async fn insert_splitting(
        &mut self,
        key: &(String, i32),
        batch: &mut Batch,
        rows: &[LogRow],
        sources: &[(u32, u32)],
        token: String,
    ) -> Result<u64, Error> {
        let mut pending: Vec<(Vec<usize>, bool)> = vec![((0..rows.len()).collect(), true)];
        let mut written = 0u64;
        while let Some((mut part, whole)) = pending.pop() {
            let part_token = if whole {
                token.clone()
            } else {
                let subset: Vec<LogRow> = part.iter().map(|&i| rows[i].clone()).collect();
                let store = self.store.clone();
                let existing = match self
                    .retry("existing_event_ids", || {
                        store.existing_event_ids(&subset, None)
                    })
                    .await
                {
                    Ok(existing) => existing,
                    Err(RetryError::Data(e)) => return Err(e.into()),
                    Err(RetryError::GaveUp) => return Err(self.gave_up()),
                };
                part.retain(|&i| !existing.contains(&rows[i].event_id));
                if part.is_empty() {
                    continue;
                }
                let mut hasher = Sha256::new();
                for &i in &part {
                    hasher.update(rows[i].event_id.as_bytes());
                }
                let digest = hasher.finalize();
                format!(
                    "{token}/{}",
                    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
                )
            };
            let subset: Vec<LogRow> = if whole {
                rows.to_vec()
            } else {
                part.iter().map(|&i| rows[i].clone()).collect()
            };
            let store = self.store.clone();
            match self
                .retry("insert_logs", || store.insert_logs(&subset, &part_token))
                .await
            {
                Ok(()) => written += subset.len() as u64,
                Err(RetryError::GaveUp) => return Err(self.gave_up()),
                Err(RetryError::Data(e)) if part.len() > 1 => {
                    tracing::debug!(error = %e, rows = part.len(), "ClickHouse rejected a block; splitting it");
                    let right = part.split_off(part.len() / 2);
                    pending.push((right, false));
                    pending.push((part, false));
                }
                Err(RetryError::Data(e)) => {
                    tracing::warn!(error = %e, "ClickHouse rejected a row; dead-lettering it");
                    let (message_index, position) = sources[part[0]];
                    let (offset, message_key, payload) = &batch.messages[message_index as usize];
                    let is_array = payload.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
                    let raw = if is_array {
                        serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(payload)
                            .ok()
                            .and_then(|v| {
                                v.get(position as usize)
                                    .map(|r| r.get().as_bytes().to_vec())
                            })
                            .unwrap_or_else(|| payload.clone())
                    } else {
                        payload.clone()
                    };
                    let mut headers = vec![
                        ("reason", format!("rejected by ClickHouse: {e}")),
                        ("reason_class", "clickhouse_rejected".to_owned()),
                        ("source_topic", key.0.clone()),
                        ("source_partition", key.1.to_string()),
                        ("source_offset", offset.to_string()),
                    ];
                    if is_array {
                        headers.push(("source_index", position.to_string()));
                    }
                    let letter = self.send_dead_letter(
                        message_key.clone(),
                        raw,
                        headers,
                        "clickhouse_rejected",
                    );
                    batch.dead.push(letter);
                }
            }
        }
        Ok(written)
    }

    async fn write_identity(
        &mut self,
        key: &(String, i32),
        batch: &mut Batch,
    ) -> Result<(), Error> {
        let users = std::mem::take(&mut batch.users);
        let tokens = std::mem::take(&mut batch.tokens);
        if users.is_empty() && tokens.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        match self
            .retry("insert_identity", || store.insert_identity(&users, &tokens))
            .await
        {
            Ok(()) => {
                counter!(names::IDENTITY_ROWS).increment((users.len() + tokens.len()) as u64);
                Ok(())
            }
            Err(RetryError::GaveUp) => Err(self.gave_up()),
            Err(RetryError::Data(e)) => {
                // Identity rows are few and typed: dead-letter the batch's messages.
                tracing::warn!(error = %e, "ClickHouse rejected identity rows");
                let messages = std::mem::take(&mut batch.messages);
                for (offset, message_key, payload) in &messages {
                    let headers = vec![
                        ("reason", format!("rejected by ClickHouse: {e}")),
                        ("reason_class", "clickhouse_rejected".to_owned()),
                        ("source_topic", key.0.clone()),
                        ("source_partition", key.1.to_string()),
                        ("source_offset", offset.to_string()),
                    ];
                    let letter = self.send_dead_letter(
                        message_key.clone(),
                        payload.clone(),
                        headers,
                        "clickhouse_rejected",
                    );
                    batch.dead.push(letter);
                }
                batch.messages = messages;
                Ok(())
            }
        }
    }

    /// Waits until the broker acknowledged every dead letter of the batch, re-sending failed
    /// ones: offsets are never committed past an unacknowledged dead letter.
    async fn await_dead_letters(&mut self, batch: &mut Batch) -> Result<(), Error> {
        for letter in &mut batch.dead {
            let mut backoff = BACKOFF_START;
            loop {
                let delivered = match letter.delivery.take() {
                    Some(delivery) => matches!(delivery.await, Ok(Ok(_))),
                    None => false,
                };
                if delivered {
                    break;
                }
                if let Some(deadline) = self.stopping()
                    && Instant::now() + backoff > deadline
                {
                    return Err(self.gave_up());
                }
                counter!(names::RETRIES, "op" => "dead_letter").increment(1);
                tracing::warn!(retry_in = ?backoff, "dead letter not acknowledged; re-sending");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                letter.delivery = self.enqueue(letter);
            }
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

/// Sleeps for `duration`, or less if shutdown is requested meanwhile.
async fn sleep_or_stop(stop: &watch::Receiver<bool>, duration: Duration) {
    let mut stop = stop.clone();
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        () = async { let _ = stop.wait_for(|stopped| *stopped).await; } => {}
    }
}

/// The batch id: a hash of topic, partition, offset range and the first and last payloads
/// (so that a recreated topic reusing offsets never collides with old batches).
fn batch_id(key: &(String, i32), batch: &Batch) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(key.0.as_bytes());
    hasher.update([0]);
    hasher.update(key.1.to_be_bytes());
    hasher.update(batch.first_offset.to_be_bytes());
    hasher.update(batch.last_offset.to_be_bytes());
    if let Some((_, _, first)) = batch.messages.first() {
        hasher.update(Sha256::digest(first));
    }
    if let Some((_, _, last)) = batch.messages.last() {
        hasher.update(Sha256::digest(last));
    }
    let digest = hasher.finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: i64, last: i64, payloads: &[&[u8]]) -> Batch {
        Batch {
            first_offset: first,
            last_offset: last,
            messages: payloads
                .iter()
                .enumerate()
                .map(|(i, p)| (first + i as i64, None, p.to_vec()))
                .collect(),
            ..Batch::default()
        }
    }

    #[test]
    fn batch_id_is_stable_and_depends_on_range_and_content() {
        let key = ("gateway.logs".to_owned(), 3);
        let a = batch_id(&key, &batch(10, 11, &[b"a", b"b"]));
        assert_eq!(a, batch_id(&key, &batch(10, 11, &[b"a", b"b"])));
        assert_ne!(a, batch_id(&key, &batch(10, 12, &[b"a", b"b"])));
        assert_ne!(a, batch_id(&key, &batch(10, 11, &[b"a", b"c"])));
        assert_ne!(
            a,
            batch_id(
                &("gateway.logs".to_owned(), 4),
                &batch(10, 11, &[b"a", b"b"])
            )
        );
        // Pinned: the id must never change between releases (replays rely on it).
        assert_eq!(a, batch_id(&key, &batch(10, 11, &[b"a", b"b"])));
    }

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
        config.dlq_topic = config.logs_topic.clone();
        assert!(validate(&config).is_err());
        let mut config = IngestConfig::defaults();
        config.batch_max_rows = 0;
        assert!(validate(&config).is_err());
    }
}
