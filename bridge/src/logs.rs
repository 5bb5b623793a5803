//! The `logs` pump: reads rows in id order above the cursor (and the rows that filled a gap),
//! publishes them, and hands back the cursor to checkpoint once the broker has acknowledged
//! them. One batch is in flight while the next is read, so the database and the broker work
//! at the same time; the checkpoint only ever moves to a batch whose every row is acknowledged.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::producer::DeliveryFuture;
use uuid::Uuid;

use crate::Error;
use crate::cursor::LogCursor;
use crate::mapping::LogSourceRow;
use crate::progress::Stats;
use crate::publish::{Publisher, Sent};
use crate::source::{LogQueries, Source};

/// Gap ranges re-read per query.
const GAP_RANGES_PER_QUERY: usize = 100;

/// What one step read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The read above the cursor returned fewer rows than a batch: nothing committed is left.
    pub caught_up: bool,
}

/// Publishes `logs` rows and tracks what Kafka has acknowledged.
pub struct LogPump {
    source: Source,
    queries: LogQueries,
    publisher: Publisher,
    topic: String,
    namespace: Uuid,
    batch_size: usize,
    late_row_window_secs: i64,
    recheck_every: Duration,
    last_recheck: Option<Instant>,
    /// What has been read (ahead of what is acknowledged).
    read: LogCursor,
    in_flight: Option<(Vec<DeliveryFuture>, LogCursor)>,
}

/// How the pump is set up.
#[derive(Debug, Clone)]
pub struct PumpSettings {
    pub topic: String,
    pub namespace: Uuid,
    pub batch_size: usize,
    pub late_row_window_secs: u64,
    /// How often the open gaps are re-read.
    pub recheck_every: Duration,
}

impl std::fmt::Debug for LogPump {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogPump")
            .field("source", &self.source.name())
            .field("read", &self.read)
            .field("in_flight", &self.in_flight.as_ref().map(|(d, _)| d.len()))
            .finish_non_exhaustive()
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl LogPump {
    pub async fn new(
        source: Source,
        publisher: Publisher,
        settings: PumpSettings,
        acknowledged: LogCursor,
    ) -> Result<Self, Error> {
        let queries = source.log_queries().await?;
        Ok(Self {
            source,
            queries,
            publisher,
            topic: settings.topic,
            namespace: settings.namespace,
            batch_size: settings.batch_size,
            late_row_window_secs: i64::try_from(settings.late_row_window_secs).unwrap_or(i64::MAX),
            recheck_every: settings.recheck_every,
            last_recheck: None,
            read: acknowledged,
            in_flight: None,
        })
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The highest id read so far.
    pub fn read_high(&self) -> i64 {
        self.read.high
    }

    /// Reads and publishes one batch (plus late rows when a re-check is due, or `force_recheck`).
    /// Returns the cursor acknowledged by this step (the previous batch's), if any.
    pub async fn step(
        &mut self,
        channels: &HashMap<i64, String>,
        stats: &mut Stats,
        force_recheck: bool,
    ) -> Result<(Step, Option<LogCursor>), Error> {
        let now = now_secs();
        let mut rows = Vec::new();
        let due = self
            .last_recheck
            .is_none_or(|at| at.elapsed() >= self.recheck_every);
        if !self.read.gaps.is_empty() && (due || force_recheck) {
            self.last_recheck = Some(Instant::now());
            for ranges in self.read.gap_ranges(GAP_RANGES_PER_QUERY) {
                for row in self.source.logs_in(&self.queries, &ranges).await? {
                    if self.read.fill(row.id) {
                        stats.late_log_rows += 1;
                        rows.push(row);
                    }
                }
            }
            for gap in self.read.expire(now, self.late_row_window_secs) {
                stats.log_ids_given_up += gap.ids();
                tracing::debug!(from = gap.from, to = gap.to, "missing log ids given up");
            }
        }
        let fresh = self
            .source
            .logs_after(&self.queries, self.read.high, self.batch_size)
            .await?;
        let caught_up = fresh.len() < self.batch_size;
        let ids: Vec<i64> = fresh.iter().map(|r| r.id).collect();
        self.read.advance(&ids, now);
        rows.extend(fresh);
        stats.log_rows_read += rows.len() as u64;
        let deliveries = self.publish(&rows, channels, stats).await?;
        let acknowledged = self.settle().await?;
        self.in_flight = Some((deliveries, self.read.clone()));
        Ok((Step { caught_up }, acknowledged))
    }

    async fn publish(
        &self,
        rows: &[LogSourceRow],
        channels: &HashMap<i64, String>,
        stats: &mut Stats,
    ) -> Result<Vec<DeliveryFuture>, Error> {
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            let channel = channels.get(&row.channel_id).map_or("", String::as_str);
            let payload =
                serde_json::to_vec(&row.event(&self.namespace, channel)).expect("events serialize");
            match self
                .publisher
                .send(&self.topic, &row.key(), &payload)
                .await?
            {
                Sent::Queued(delivery) => {
                    deliveries.push(delivery);
                    stats.log_rows_published += 1;
                }
                Sent::TooLarge => {
                    stats.log_rows_too_large += 1;
                    tracing::error!(
                        id = row.id,
                        bytes = payload.len(),
                        "log row larger than the producer's message.max.bytes: not published"
                    );
                }
            }
        }
        Ok(deliveries)
    }

    /// Waits for the batch in flight; returns its cursor once every row is acknowledged.
    pub async fn settle(&mut self) -> Result<Option<LogCursor>, Error> {
        match self.in_flight.take() {
            None => Ok(None),
            Some((deliveries, cursor)) => {
                Publisher::settle(deliveries).await?;
                Ok(Some(cursor))
            }
        }
    }
}
