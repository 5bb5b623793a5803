//! `GET /api/log/export` (admin) and `/api/log/self/export` (user): every log matching the
//! list's filters as one CSV or JSON Lines file, streamed.
//!
//! Memory stays constant whatever the size: rows are decoded from the ClickHouse cursor as
//! they arrive, encoded into chunks of about [`CHUNK_BYTES`], and the next chunk is only read
//! when hyper has written the last one to the socket (it polls the body only then), so a slow
//! client slows the query instead of filling memory. A client that disconnects drops the
//! body, hence the cursor, hence the HTTP connection to ClickHouse, which cancels the query.
//! Errors before the first byte (bad input, auth, a failing query) are envelope errors; after
//! it, the transfer is cut short without the final chunk, so the client sees an error rather
//! than a complete-looking file.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use logbus_projections::rows::LogRow;

use crate::auth::{AdminAuth, UserAuth};
use crate::error::{ApiError, DbError, Failure};
use crate::params::{ExportOptions, LogFilter, Params};
use crate::state::AppState;
use crate::store::LogRows;
use crate::views::{ErrorResponses, ExportEncoder, SignedIn, View};

/// About how many bytes each chunk of the body holds (a few hundred rows).
pub const CHUNK_BYTES: usize = 64 * 1024;

/// What the body stream carries from one chunk to the next.
struct Transfer {
    rows: LogRows,
    encoder: ExportEncoder,
    /// The row read before the response started, not yet encoded.
    first: Option<LogRow>,
    done: bool,
}

impl Transfer {
    /// The next chunk: rows until about [`CHUNK_BYTES`] are encoded, or the rest and the
    /// totals row at the end.
    async fn next_chunk(mut self) -> Result<Option<(Bytes, Transfer)>, DbError> {
        if self.done {
            return Ok(None);
        }
        if let Some(row) = self.first.take() {
            self.encoder.push(row);
        }
        while self.encoder.buffered() < CHUNK_BYTES {
            match self.rows.next().await {
                Ok(Some(row)) => self.encoder.push(row),
                Ok(None) => {
                    self.done = true;
                    let last = self.encoder.finish();
                    return Ok(Some((last, self)));
                }
                Err(error) => {
                    tracing::error!(%error, rows = self.encoder.totals().rows,
                        "export failed after its first byte; the transfer is cut short");
                    return Err(error);
                }
            }
        }
        let chunk = self.encoder.take();
        Ok(Some((chunk, self)))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

async fn export_of(
    state: &AppState,
    filter: LogFilter,
    options: ExportOptions,
    view: View,
    name: &str,
) -> Result<Response, ApiError> {
    let (rows, first) = state
        .store()
        .export(&filter)
        .await
        .map_err(ApiError::db(Failure::Export))?;
    let transfer = Transfer {
        rows,
        encoder: ExportEncoder::new(options.format, view, options.totals),
        first,
        done: false,
    };
    let body = Body::from_stream(futures::stream::try_unfold(transfer, Transfer::next_chunk));
    let filename = format!("{name}-{}.{}", unix_now(), options.format.extension());
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .expect("an ASCII file name");
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(options.format.content_type()),
            ),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}

/// Export all logs matching the filters as one file (admin); newest first, streamed.
#[utoipa::path(get, path = "/api/log/export", tag = "admin", params(ExportOptions, LogFilter),
    security(("access_token" = [], "new_api_user" = [])),
    responses(
        (status = 200, description = "The file, as an attachment: the admin view of every \
            matching log, newest first, optionally followed by a totals row",
            content((String = "text/csv"), (String = "application/x-ndjson"))),
        ErrorResponses<SignedIn>))]
pub async fn export_all(
    State(state): State<AppState>,
    _admin: AdminAuth,
    params: Params,
) -> Result<Response, ApiError> {
    let filter = LogFilter::from_params(&params, true)?;
    let options = ExportOptions::from_params(&params)?;
    export_of(&state, filter, options, View::Admin, "logbus-logs").await
}

/// Export the caller's logs matching the filters as one file (user); newest first, streamed.
#[utoipa::path(get, path = "/api/log/self/export", tag = "user", params(ExportOptions, LogFilter),
    security(("access_token" = [], "new_api_user" = [])),
    responses(
        (status = 200, description = "The file, as an attachment: the user view of the \
            caller's matching logs, newest first, optionally followed by a totals row",
            content((String = "text/csv"), (String = "application/x-ndjson"))),
        ErrorResponses<SignedIn>))]
pub async fn export_self(
    State(state): State<AppState>,
    UserAuth(user): UserAuth,
    params: Params,
) -> Result<Response, ApiError> {
    let mut filter = LogFilter::from_params(&params, false)?;
    filter.user_id = Some(user.id);
    let options = ExportOptions::from_params(&params)?;
    export_of(&state, filter, options, View::User, "logbus-my-logs").await
}
