//! The live tail: one shared reader of the rows that reach ClickHouse, fanned out to every
//! connected client, which filters them in memory ([`matching`]) and resumes from its last
//! event's [`TailCursor`] after a reconnect ([`stream`]).
//!
//! Cost does not grow with the number of viewers: while at least one client is connected,
//! the reader sends one query per `--tail-poll-ms` (more only while it is behind, then
//! `--tail-read-rows` rows at a time); a reconnect with `Last-Event-ID` adds its own catch-up
//! queries, which stop where the reader stands. Rows are read once they are `--tail-settle-ms`
//! old by ClickHouse's clock, so that a row whose insert was still committing when the
//! reader passed its moment is not skipped (docs/api.md, "Live tail").

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use logbus_projections::rows::LogRow;
use metrics::gauge;
use tokio::sync::broadcast;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::error::DbError;
use crate::metrics::names;
use crate::store::Store;
use crate::store::tail::TailEnd;
use crate::views::{View, log_json};

mod config;
pub mod matching;
mod stream;

pub use crate::params::{LastEventId, TailCursor};
pub use config::TailConfig;
pub use stream::{TailItem, TailRow, TailStartError, TailStream};

/// Batches of new rows the reader keeps for clients that are behind (each batch is one poll):
/// a client further behind than this ends with [`TailItem::Lagged`] and resumes.
const BUFFERED_BATCHES: usize = 256;

/// Rows the reader sent in one poll, in the tail's order, with each row's JSON per view made
/// by the first client that sends it and shared by the others: the encoding cost of a row
/// does not grow with the number of viewers.
#[derive(Debug)]
pub struct Batch {
    pub rows: Vec<(TailCursor, LogRow)>,
    /// Per row: its JSON without `id` in the admin view, and in the user view.
    encoded: Vec<[OnceLock<Arc<str>>; 2]>,
}

impl Batch {
    pub fn new(rows: Vec<(TailCursor, LogRow)>) -> Self {
        let encoded = rows.iter().map(|_| Default::default()).collect();
        Batch { rows, encoded }
    }

    /// Row `index`'s JSON without its `id` ([`log_json::without_id`]) in `view`.
    pub fn without_id(&self, index: usize, view: View) -> Arc<str> {
        let slot = usize::from(view == View::User);
        self.encoded[index][slot]
            .get_or_init(|| log_json::without_id(&self.rows[index].1, view).into())
            .clone()
    }
}

/// Why a tail was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailRefusal {
    /// `--tail-max-streams-per-user` streams of this user are open.
    UserLimit(usize),
    /// `--tail-max-streams` streams are open.
    GlobalLimit(usize),
}

/// The tail of one API process: cheap to clone.
#[derive(Debug, Clone)]
pub struct Tail(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    store: Store,
    config: TailConfig,
    reader: tokio::sync::Mutex<Reader>,
    streams: Arc<Mutex<Streams>>,
    closed: CancellationToken,
}

#[derive(Debug)]
struct Reader {
    sender: broadcast::Sender<Arc<Batch>>,
    /// The last row read (or where the reader started); `None` while no reader runs.
    position: Option<TailCursor>,
}

#[derive(Debug, Default)]
struct Streams {
    total: usize,
    per_user: HashMap<i64, usize>,
}

/// One open stream, counted against the limits until dropped.
#[derive(Debug)]
pub struct StreamSlot {
    streams: Arc<Mutex<Streams>>,
    user_id: i64,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        streams.total -= 1;
        if let Some(count) = streams.per_user.get_mut(&self.user_id) {
            *count -= 1;
            if *count == 0 {
                streams.per_user.remove(&self.user_id);
            }
        }
        gauge!(names::TAIL_STREAMS).decrement(1.0);
    }
}

impl Tail {
    pub fn new(store: Store, config: TailConfig) -> Self {
        let (sender, _) = broadcast::channel(BUFFERED_BATCHES);
        Self(Arc::new(Inner {
            store,
            config,
            reader: tokio::sync::Mutex::new(Reader {
                sender,
                position: None,
            }),
            streams: Default::default(),
            closed: CancellationToken::new(),
        }))
    }

    pub fn config(&self) -> &TailConfig {
        &self.0.config
    }

    pub(crate) fn store(&self) -> &Store {
        &self.0.store
    }

    /// Counts a new stream of `user_id` against the limits, or says which limit is reached.
    pub fn open(&self, user_id: i64) -> Result<StreamSlot, TailRefusal> {
        let config = &self.0.config;
        let mut streams = self
            .0
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if streams.total >= config.tail_max_streams {
            return Err(TailRefusal::GlobalLimit(config.tail_max_streams));
        }
        let of_user = streams.per_user.entry(user_id).or_default();
        if *of_user >= config.tail_max_streams_per_user {
            return Err(TailRefusal::UserLimit(config.tail_max_streams_per_user));
        }
        *of_user += 1;
        streams.total += 1;
        gauge!(names::TAIL_STREAMS).increment(1.0);
        Ok(StreamSlot {
            streams: self.0.streams.clone(),
            user_id,
        })
    }

    /// A receiver of every batch the reader sends from now on, and the reader's position at
    /// this moment: the batches received hold exactly the rows after it. Starts the reader
    /// (at the server's clock) when none runs.
    pub async fn subscribe(
        &self,
    ) -> Result<(broadcast::Receiver<Arc<Batch>>, TailCursor), DbError> {
        let mut reader = self.0.reader.lock().await;
        let position = match reader.position {
            Some(position) => position,
            None => {
                let start = TailCursor::at(self.0.store.tail_start().await?);
                reader.position = Some(start);
                tokio::spawn(self.clone().read());
                start
            }
        };
        Ok((reader.sender.subscribe(), position))
    }

    /// Ends every stream (at shutdown: open streams would otherwise keep the server's
    /// graceful drain waiting for ever).
    pub fn close(&self) {
        self.0.closed.cancel();
    }

    pub(crate) fn closed(&self) -> &CancellationToken {
        &self.0.closed
    }

    /// The shared reader: polls until no client listens (or the tail is closed).
    async fn read(self) {
        let config = &self.0.config;
        let mut poll = tokio::time::interval(config.poll_interval());
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let end = TailEnd::Settled {
            settle_ms: config.settle_ms(),
        };
        loop {
            tokio::select! {
                () = self.0.closed.cancelled() => break,
                _ = poll.tick() => {}
            }
            let position = {
                let mut reader = self.0.reader.lock().await;
                if reader.sender.receiver_count() == 0 {
                    reader.position = None;
                    return;
                }
                reader.position.expect("set while the reader runs")
            };
            let limit = config.tail_read_rows.max(1);
            let rows = match self
                .0
                .store
                .tail("tail_read", None, &position, &end, limit)
                .await
            {
                Ok(rows) => rows,
                Err(error) => {
                    // The streams stay open (heartbeats go on); the next poll retries.
                    tracing::warn!(%error, "the tail's reader could not read new rows");
                    continue;
                }
            };
            let Some((last, _)) = rows.last() else {
                continue;
            };
            let full = rows.len() as u64 >= limit;
            let mut reader = self.0.reader.lock().await;
            reader.position = Some(*last);
            // No receiver left is not an error: the next poll stops the reader.
            let _ = reader.sender.send(Arc::new(Batch::new(rows)));
            if full {
                // Behind: read on at once instead of waiting for the next tick.
                poll.reset_immediately();
            }
        }
        self.0.reader.lock().await.position = None;
    }
}

impl TailConfig {
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.tail_poll_ms.max(10))
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.tail_heartbeat_secs.max(1))
    }

    pub fn settle_ms(&self) -> i64 {
        i64::try_from(self.tail_settle_ms).unwrap_or(i64::MAX)
    }
}
