//! The export query: every log matching the filters, newest first, read through a cursor so
//! that rows are decoded as they arrive and nothing is collected.

use clickhouse::query::RowCursor;
use logbus_projections::rows::LogRow;
use logbus_projections::tables;

use super::Store;
use super::logs::list_conditions;
use crate::error::DbError;
use crate::params::LogFilter;

/// Rows of `logs` read through a cursor (an export, a token's logs), in the query's order.
/// Dropping it closes its HTTP connection to ClickHouse, which cancels the query there.
pub struct LogRows {
    cursor: RowCursor<LogRow>,
}

impl std::fmt::Debug for LogRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogRows")
            .field("received_bytes", &self.cursor.received_bytes())
            .finish()
    }
}

impl LogRows {
    /// Opens `query`'s cursor and reads its first row within the query deadline, so that a
    /// failure before any byte is sent is an ordinary error.
    pub(super) async fn open(
        store: &Store,
        kind: &'static str,
        query: clickhouse::query::Query,
    ) -> Result<(LogRows, Option<LogRow>), DbError> {
        let mut rows = LogRows {
            cursor: query.fetch::<LogRow>()?,
        };
        let first = store.timed(kind, rows.cursor.next()).await?;
        Ok((rows, first))
    }

    /// The next row; `None` after the last.
    pub async fn next(&mut self) -> Result<Option<LogRow>, DbError> {
        Ok(self.cursor.next().await?)
    }
}

impl Store {
    /// Opens the export of the logs matching `filter`, in the list's order
    /// (`created_at DESC, event_id DESC`, the table's sort key read backwards, so ClickHouse
    /// streams rows without sorting the set). The first row is read within the query
    /// deadline, so that a failure before any byte is sent is an ordinary error; the whole
    /// transfer may last up to the export deadline.
    pub async fn export(&self, filter: &LogFilter) -> Result<(LogRows, Option<LogRow>), DbError> {
        // The list's own conditions: an export is exactly the list's rows.
        let conditions = list_conditions(filter);
        let sql = format!(
            "SELECT ?fields FROM {} {} ORDER BY created_at DESC, event_id DESC",
            tables::LOGS,
            conditions.where_clause()
        );
        let query = self
            .query(&sql, &conditions)
            .with_setting(
                "max_execution_time",
                self.export_timeout.as_secs().to_string(),
            )
            // A client that goes away while the server is still reading (before the first
            // row is written) cancels the query too, not only one that goes away mid-transfer.
            .with_setting("cancel_http_readonly_queries_on_client_close", "1");
        LogRows::open(self, "export", query).await
    }
}
