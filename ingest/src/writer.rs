//! The write side of a batch: record its intent, drop already-stored event ids, insert with a
//! deduplication token (bisecting blocks ClickHouse rejects), dead-letter what cannot be
//! written, and wait for the dead letters' acknowledgements. A [`Writer`] is cheap to clone,
//! so each batch is written by its own task while the consumer loop goes on reading.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use logbus_projections::rows::{LogRow, TokenRow, UserRow};
use metrics::{counter, gauge, histogram};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::http::{Health, names};
use crate::store::{Failure, Intent, Store};
use crate::worker::Kind;
use crate::{Error, IngestConfig};

pub(crate) const BACKOFF_START: Duration = Duration::from_millis(100);
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// A dead letter on its way to the DLQ topic: kept until the broker acknowledged it.
pub(crate) struct DeadLetter {
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    delivery: Option<DeliveryFuture>,
}

#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) first_offset: i64,
    pub(crate) last_offset: i64,
    pub(crate) started: Option<Instant>,
    pub(crate) bytes: usize,
    /// Offsets and payloads of the messages, to hash the batch and to dead-letter rows
    /// that ClickHouse rejects.
    pub(crate) messages: Vec<(i64, Option<Vec<u8>>, Vec<u8>)>,
    pub(crate) rows: Vec<LogRow>,
    /// For each row: index into `messages` and position in its message.
    pub(crate) sources: Vec<(u32, u32)>,
    pub(crate) users: Vec<UserRow>,
    pub(crate) tokens: Vec<TokenRow>,
    pub(crate) dead: Vec<DeadLetter>,
    pub(crate) planned: Option<Intent>,
}

impl Batch {
    pub(crate) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

enum RetryError {
    Data(clickhouse::error::Error),
    GaveUp,
}

/// What a finished write reports back to the consumer loop, which commits it.
pub(crate) struct Written {
    pub(crate) key: (String, i32),
    /// The partition assignment the batch was read under: a batch of a partition that was
    /// revoked meanwhile is not committed (its next owner replays it).
    pub(crate) generation: u64,
    pub(crate) next_offset: i64,
}

#[derive(Clone)]
pub(crate) struct Writer {
    config: Arc<IngestConfig>,
    store: Store,
    producer: FutureProducer,
    health: Health,
    stop: watch::Receiver<bool>,
    stop_deadline: Arc<OnceLock<Instant>>,
    inserts: Arc<AtomicU64>,
    fail_after: Option<u64>,
}

impl Writer {
    pub(crate) fn new(
        config: Arc<IngestConfig>,
        store: Store,
        producer: FutureProducer,
        health: Health,
        stop: watch::Receiver<bool>,
        fail_after: Option<u64>,
    ) -> Self {
        Writer {
            config,
            store,
            producer,
            health,
            stop,
            stop_deadline: Arc::new(OnceLock::new()),
            inserts: Arc::new(AtomicU64::new(0)),
            fail_after,
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Writes one batch and waits for its dead letters; the caller commits `next_offset`.
    pub(crate) async fn write(
        self,
        key: (String, i32),
        kind: Kind,
        generation: u64,
        mut batch: Batch,
    ) -> Result<Written, Error> {
        let started = Instant::now();
        let age = batch.started.map(|s| s.elapsed());
        match kind {
            Kind::Logs => self.write_logs(&key, &mut batch).await?,
            Kind::Identity => self.write_identity(&key, &mut batch).await?,
        }
        self.await_dead_letters(&mut batch).await?;
        histogram!(names::FLUSH_SECONDS, "topic" => kind.label())
            .record(started.elapsed().as_secs_f64());
        counter!(names::BATCHES, "topic" => kind.label()).increment(1);
        tracing::debug!(
            topic = key.0,
            partition = key.1,
            messages = batch.messages.len(),
            age_ms = age.map(|a| a.as_millis() as u64),
            write_ms = started.elapsed().as_millis() as u64,
            "batch written"
        );
        Ok(Written {
            key,
            generation,
            next_offset: batch.last_offset + 1,
        })
    }

    pub(crate) fn send_dead_letter(
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

    /// Starts (once) the shutdown clock and returns its deadline.
    pub(crate) fn shutdown_deadline(&self) -> Instant {
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

    /// Retries transient ClickHouse failures with capped exponential backoff. While a write
    /// retries, the consumer loop reads on only until that partition's next batch is due or
    /// every write slot is taken, then waits: memory stays bounded.
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

    /// [`Self::retry`] for bookkeeping and lookups, where a rejection is not the batch's data
    /// at fault and cannot be dead-lettered: it fails the write like giving up at shutdown.
    pub(crate) async fn retry_or_fail<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = clickhouse::error::Result<T>>,
    {
        match self.retry(op, f).await {
            Ok(value) => Ok(value),
            Err(RetryError::Data(e)) => Err(e.into()),
            Err(RetryError::GaveUp) => Err(self.gave_up()),
        }
    }

    async fn write_logs(&self, key: &(String, i32), batch: &mut Batch) -> Result<(), Error> {
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
            self.retry_or_fail("record_intent", || store.record_intent(&intent))
                .await?;
        }

        let store = self.store.clone();
        let existing = self
            .retry_or_fail("existing_event_ids", || {
                store.existing_event_ids(&rows, Some(batch_id))
            })
            .await?;
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
        let inserts = self.inserts.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_after.is_some_and(|n| inserts >= n) {
            tracing::error!(
                inserts,
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
        &self,
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
                let existing = self
                    .retry_or_fail("existing_event_ids", || {
                        store.existing_event_ids(&subset, None)
                    })
                    .await?;
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
            let subset: std::borrow::Cow<'_, [LogRow]> = if whole {
                rows.into()
            } else {
                part.iter()
                    .map(|&i| rows[i].clone())
                    .collect::<Vec<_>>()
                    .into()
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

    async fn write_identity(&self, key: &(String, i32), batch: &mut Batch) -> Result<(), Error> {
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
    async fn await_dead_letters(&self, batch: &mut Batch) -> Result<(), Error> {
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
}

/// Sleeps for `duration`, or less if shutdown is requested meanwhile.
pub(crate) async fn sleep_or_stop(stop: &watch::Receiver<bool>, duration: Duration) {
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
}
