//! The write side of a batch: record its intent, drop already-stored event ids, insert with a
//! deduplication token (bisecting blocks ClickHouse rejects), dead-letter what cannot be
//! written, and wait for the dead letters' acknowledgements. A [`Writer`] is cheap to clone,
//! so each batch is written by its own task while the consume loop goes on reading; it
//! reports a [`Written`] back and never commits (only the loop does, in offset order).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use logbus_projections::rows::{Intent, LogRow};
use metrics::{counter, gauge, histogram};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::batch::{Batch, RowSource, batch_id};
use crate::dead_letter::{DeadLetterQueue, SentLetter};
use crate::metrics::names;
use crate::retry::{Retrier, RetryError, is_partition_limit};
use crate::source::{Kind, TopicPartition};
use crate::store::Store;

/// A batch handed to a writer, with the dead letters sent while it was read.
#[derive(Debug)]
pub(crate) struct Flush {
    pub(crate) source: TopicPartition,
    pub(crate) kind: Kind,
    /// The partition assignment the batch was read under (see [`Written::generation`]).
    pub(crate) generation: u64,
    pub(crate) batch: Batch,
    pub(crate) letters: Vec<SentLetter>,
}

/// What a finished write reports back to the consume loop, which commits it.
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) source: TopicPartition,
    /// The partition assignment the batch was read under: a batch of a partition that was
    /// revoked meanwhile is not committed (its next owner replays it).
    pub(crate) generation: u64,
    pub(crate) next_offset: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Writer {
    group_id: Arc<str>,
    store: Store,
    dlq: DeadLetterQueue,
    retrier: Retrier,
    inserts: Arc<AtomicU64>,
    fail_after: Option<u64>,
}

impl Writer {
    pub(crate) fn new(
        group_id: &str,
        store: Store,
        dlq: DeadLetterQueue,
        retrier: Retrier,
        fail_after: Option<u64>,
    ) -> Self {
        Writer {
            group_id: group_id.into(),
            store,
            dlq,
            retrier,
            inserts: Arc::new(AtomicU64::new(0)),
            fail_after,
        }
    }

    /// Writes one batch and waits for its dead letters; the caller commits `next_offset`.
    pub(crate) async fn write(self, flush: Flush) -> Result<Written, Error> {
        let Flush {
            source,
            kind,
            generation,
            mut batch,
            mut letters,
        } = flush;
        let started = Instant::now();
        let age = batch.started.map(|s| s.elapsed());
        match kind {
            Kind::Logs => self.write_logs(&source, &mut batch, &mut letters).await?,
            Kind::Identity => {
                self.write_identity(&source, &mut batch, &mut letters)
                    .await?
            }
        }
        self.dlq.await_delivery(&mut letters, &self.retrier).await?;
        histogram!(names::FLUSH_SECONDS, "topic" => kind.label())
            .record(started.elapsed().as_secs_f64());
        counter!(names::BATCHES, "topic" => kind.label()).increment(1);
        gauge!(names::LAST_FLUSH, "topic" => kind.label()).set(crate::metrics::unix_now());
        tracing::debug!(
            %source,
            messages = batch.messages.len(),
            age_ms = age.map(|a| a.as_millis() as u64),
            write_ms = started.elapsed().as_millis() as u64,
            "batch written"
        );
        Ok(Written {
            source,
            generation,
            next_offset: batch.next_offset(),
        })
    }

    async fn write_logs(
        &self,
        source: &TopicPartition,
        batch: &mut Batch,
        letters: &mut Vec<SentLetter>,
    ) -> Result<(), Error> {
        let batch_id = batch_id(source, batch);
        if batch
            .planned
            .as_ref()
            .is_some_and(|i| i.batch_id != batch_id)
        {
            tracing::warn!(
                %source,
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
        // The intent and the event-id lookup are independent (the lookup only reads, and the
        // insert waits for both), so they share one round trip's wait.
        let record_intent = async {
            if already_recorded {
                return Ok(());
            }
            let intent = Intent {
                consumer_group: self.group_id.to_string(),
                topic: source.topic.clone(),
                partition: source.partition,
                first_offset: batch.first_offset,
                last_offset: batch.last_offset,
                batch_id,
                rows: rows.len() as u32,
            };
            self.retrier
                .retry_or_fail("record_intent", || self.store.record_intent(&intent))
                .await
        };
        let lookup = self.retrier.retry_or_fail("existing_event_ids", || {
            self.store.existing_event_ids(&rows, Some(batch_id))
        });
        let ((), existing) = tokio::try_join!(record_intent, lookup)?;
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
            .insert_splitting(source, batch, letters, &rows, &sources, token)
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
        source: &TopicPartition,
        batch: &Batch,
        letters: &mut Vec<SentLetter>,
        rows: &[LogRow],
        sources: &[RowSource],
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
                    .retrier
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
                .retrier
                .retry("insert_logs", || store.insert_logs(&subset, &part_token))
                .await
            {
                Ok(()) => written += subset.len() as u64,
                Err(RetryError::GaveUp) => return Err(self.retrier.gave_up()),
                Err(RetryError::Data(e)) if part.len() > 1 => {
                    tracing::debug!(error = %e, rows = part.len(), "ClickHouse rejected a block; splitting it");
                    if is_partition_limit(&e) {
                        // Halves over disjoint days: each split halves the partitions a part
                        // spans (a stable sort, so a replay splits alike).
                        part.sort_by_key(|&i| rows[i].created_at);
                    }
                    let right = part.split_off(part.len() / 2);
                    pending.push((right, false));
                    pending.push((part, false));
                }
                Err(RetryError::Data(e)) => {
                    tracing::warn!(error = %e, "ClickHouse rejected a row; dead-lettering it");
                    let letter = batch.rejected_row(source, &sources[part[0]], &e);
                    letters.push(self.dlq.send(letter));
                }
            }
        }
        Ok(written)
    }

    async fn write_identity(
        &self,
        source: &TopicPartition,
        batch: &mut Batch,
        letters: &mut Vec<SentLetter>,
    ) -> Result<(), Error> {
        let users = std::mem::take(&mut batch.users);
        let tokens = std::mem::take(&mut batch.tokens);
        if users.is_empty() && tokens.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        match self
            .retrier
            .retry("insert_identity", || store.insert_identity(&users, &tokens))
            .await
        {
            Ok(()) => {
                counter!(names::IDENTITY_ROWS).increment((users.len() + tokens.len()) as u64);
                Ok(())
            }
            Err(RetryError::GaveUp) => Err(self.retrier.gave_up()),
            Err(RetryError::Data(e)) => {
                // Identity rows are few and typed: dead-letter the batch's messages.
                tracing::warn!(error = %e, "ClickHouse rejected identity rows");
                for letter in batch.rejected_messages(source, &e) {
                    letters.push(self.dlq.send(letter));
                }
                Ok(())
            }
        }
    }
}
