//! One client's tail: the rows it missed since its `Last-Event-ID` (its own catch-up
//! queries, up to where the shared reader stood when it subscribed), then the reader's
//! batches filtered for it, each row once and in the tail's order.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use logbus_projections::rows::LogRow;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::{Batch, StreamSlot, Tail, TailCursor, matching};
use crate::error::DbError;
use crate::params::LogFilter;
use crate::store::tail::TailEnd;
use crate::views::{View, log_json};

/// Rows per catch-up query.
const CATCH_UP_PAGE: u64 = 1_000;

/// What a tail stream yields.
#[derive(Debug)]
pub enum TailItem {
    Row(TailCursor, TailRow),
    /// The client fell further behind than the reader keeps: the stream ends here, and a
    /// reconnect with the last row's cursor resumes without a gap.
    Lagged,
}

/// A row a tail sends.
#[derive(Debug)]
pub enum TailRow {
    /// Row `index` of a batch of the shared reader, whose encoding clients share.
    Shared(Arc<Batch>, usize),
    /// A row of this client's own catch-up. Boxed: a row is large next to the other variants,
    /// and streams hold one item at a time anyway.
    Own(Box<LogRow>),
}

impl TailRow {
    /// The row's JSON without its `id` in `view` ([`log_json::without_id`]).
    pub fn without_id(&self, view: View) -> Arc<str> {
        match self {
            TailRow::Shared(batch, index) => batch.without_id(*index, view),
            TailRow::Own(row) => log_json::without_id(row, view).into(),
        }
    }
}

/// Why a tail could not start.
#[derive(Debug, thiserror::Error)]
pub enum TailStartError {
    #[error(transparent)]
    Db(#[from] DbError),
    /// The resume cursor is further than the horizon from where the reader stands.
    #[error("Last-Event-ID beyond the resume horizon of {0:?}")]
    BeyondHorizon(Duration),
}

/// A tail that is subscribed and ready to stream.
#[derive(Debug)]
pub struct TailStream {
    tail: Tail,
    slot: StreamSlot,
    filter: LogFilter,
    live: broadcast::Receiver<Arc<Batch>>,
    /// Where the reader stood at subscription: `live` holds the rows after it.
    reader_at: TailCursor,
    resume: Option<TailCursor>,
}

/// The rows of `batch` (index and cursor) a client past `last` and filtering on `filter` is
/// sent, moving `last`.
fn pick<'a>(
    batch: &'a Batch,
    filter: &'a LogFilter,
    last: &'a mut TailCursor,
) -> impl Iterator<Item = (usize, TailCursor)> + 'a {
    batch
        .rows
        .iter()
        .enumerate()
        .filter(move |(_, (cursor, row))| {
            if *cursor <= *last {
                return false;
            }
            *last = *cursor;
            matching::matches(filter, row)
        })
        .map(|(index, (cursor, _))| (index, *cursor))
}

enum Next {
    Batch(Arc<Batch>),
    End,
    Lagged,
}

impl TailStream {
    /// Subscribes `filter`'s tail, resuming after `resume` when given (refused when it is
    /// further than `--tail-resume-horizon-secs` from where the reader stands).
    pub async fn start(
        tail: &Tail,
        slot: StreamSlot,
        filter: LogFilter,
        resume: Option<TailCursor>,
    ) -> Result<TailStream, TailStartError> {
        let (live, reader_at) = tail.subscribe().await?;
        let horizon = Duration::from_secs(tail.config().tail_resume_horizon_secs);
        let horizon_ms = i64::try_from(horizon.as_millis()).unwrap_or(i64::MAX);
        if let Some(resume) = resume
            && resume.ingested_ms.abs_diff(reader_at.ingested_ms) > horizon_ms.unsigned_abs()
        {
            return Err(TailStartError::BeyondHorizon(horizon));
        }
        Ok(TailStream {
            tail: tail.clone(),
            slot,
            filter,
            live,
            reader_at,
            resume,
        })
    }

    /// The rows, until the client goes, the stream's time is up or the tail closes.
    pub fn rows(self) -> impl Stream<Item = TailItem> + Send + 'static {
        let TailStream {
            tail,
            slot,
            filter,
            mut live,
            reader_at,
            resume,
        } = self;
        let max_age = Duration::from_secs(tail.config().tail_stream_max_secs.max(1));
        async_stream::stream! {
            let _slot = slot;
            let ends_at = Instant::now() + max_age;
            let mut last = reader_at;
            if let Some(resume) = resume {
                let mut caught_up = resume;
                while caught_up < reader_at {
                    let page = tail
                        .store()
                        .tail("tail_catch_up", Some(&filter), &caught_up, &TailEnd::At(reader_at), CATCH_UP_PAGE)
                        .await;
                    let rows = match page {
                        Ok(rows) => rows,
                        Err(error) => {
                            // Ending is safe: the client resumes from its last row.
                            tracing::warn!(%error, "a tail's catch-up query failed");
                            return;
                        }
                    };
                    let complete = (rows.len() as u64) < CATCH_UP_PAGE;
                    for (cursor, row) in rows {
                        caught_up = cursor;
                        yield TailItem::Row(cursor, TailRow::Own(Box::new(row)));
                    }
                    if complete {
                        break;
                    }
                }
                // A cursor from a replica whose reader is ahead: skip what it already had.
                last = last.max(resume);
            }
            loop {
                let next = tokio::select! {
                    () = tail.closed().cancelled() => Next::End,
                    () = tokio::time::sleep_until(ends_at) => Next::End,
                    received = live.recv() => match received {
                        Ok(batch) => Next::Batch(batch),
                        Err(broadcast::error::RecvError::Lagged(_)) => Next::Lagged,
                        Err(broadcast::error::RecvError::Closed) => Next::End,
                    },
                };
                match next {
                    Next::Batch(batch) => {
                        for (index, cursor) in pick(&batch, &filter, &mut last) {
                            yield TailItem::Row(cursor, TailRow::Shared(batch.clone(), index));
                        }
                    }
                    Next::Lagged => {
                        yield TailItem::Lagged;
                        return;
                    }
                    Next::End => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::views::tests::sample_row;

    fn row(ms: i64, user_id: i64) -> (TailCursor, LogRow) {
        let mut row = sample_row();
        row.user_id = user_id;
        row.event_id = Uuid::from_u64_pair(0, ms as u64);
        let cursor = TailCursor {
            ingested_ms: ms,
            event_id: row.event_id,
        };
        (cursor, row)
    }

    #[test]
    fn a_batch_gives_each_matching_row_after_the_cursor_once() {
        let batch = Batch::new(vec![row(1, 7), row(2, 8), row(3, 7), row(4, 8), row(5, 7)]);
        let filter = LogFilter {
            user_id: Some(7),
            ..Default::default()
        };
        let mut last = batch.rows[0].0;
        let picked: Vec<i64> = pick(&batch, &filter, &mut last)
            .map(|(_, cursor)| cursor.ingested_ms)
            .collect();
        assert_eq!(picked, [3, 5]);
        assert_eq!(last.ingested_ms, 5);
        assert_eq!(pick(&batch, &filter, &mut last).count(), 0, "nothing twice");
    }

    #[test]
    fn a_shared_row_is_encoded_once_per_view_and_as_its_own_copy_would_be() {
        let batch = Arc::new(Batch::new(vec![row(1, 7)]));
        for view in [View::Admin, View::User] {
            let shared = TailRow::Shared(batch.clone(), 0);
            let first = shared.without_id(view);
            let again = TailRow::Shared(batch.clone(), 0).without_id(view);
            assert!(Arc::ptr_eq(&first, &again), "encoded once in {view:?}");
            let own = TailRow::Own(Box::new(row(1, 7).1)).without_id(view);
            assert_eq!(first, own, "{view:?}");
        }
        assert_ne!(
            batch.without_id(0, View::Admin),
            batch.without_id(0, View::User),
            "one encoding per view"
        );
    }
}
