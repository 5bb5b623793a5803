//! `GET /api/log/token`: public (the key is the credential), CORS-enabled.
//!
//! The answer is new-api's envelope of a list, streamed: up to 1000 rows of up to 1 MiB each
//! are encoded as they arrive from the cursor, in chunks of about [`CHUNK_BYTES`], and the next
//! chunk is read only once hyper has written the last (as the export does), so a request
//! holds one row and one chunk, not the list. A failure before the first byte is an envelope
//! error; after it, the transfer is cut short, and the client sees truncated JSON rather
//! than a complete-looking list.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use logbus_projections::identity::hash_token_key;
use logbus_projections::rows::LogRow;
use logbus_projections::rows::identity_codes::STATUS_ENABLED;

use super::export::CHUNK_BYTES;
use crate::auth::{Client, bearer, throttled};
use crate::error::{ApiError, DbError, Failure};
use crate::params::{Params, TokenKey};
use crate::state::AppState;
use crate::store::LogRows;
use crate::views::{ErrorResponses, ListEncoder, LogListResponse, PublicToken, View};

/// What the body stream carries from one chunk to the next.
struct Transfer {
    rows: LogRows,
    encoder: Option<ListEncoder>,
    /// The row read before the response started, not yet encoded.
    first: Option<LogRow>,
}

impl Transfer {
    async fn next_chunk(mut self) -> Result<Option<(Bytes, Transfer)>, DbError> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Ok(None);
        };
        if let Some(row) = self.first.take() {
            encoder.push(row);
        }
        while encoder.buffered() < CHUNK_BYTES {
            match self.rows.next().await {
                Ok(Some(row)) => encoder.push(row),
                Ok(None) => {
                    let last = self.encoder.take().expect("encoding").finish();
                    return Ok(Some((last, self)));
                }
                Err(error) => {
                    tracing::error!(%error, rows = encoder.rows(),
                        "token logs failed after their first byte; the transfer is cut short");
                    return Err(error);
                }
            }
        }
        let chunk = encoder.take();
        Ok(Some((chunk, self)))
    }
}

/// The logs of one API token (public, CORS-enabled); newest first, at most 1000.
#[utoipa::path(get, path = "/api/log/token", tag = "public", params(TokenKey),
    responses((status = 200, body = LogListResponse), ErrorResponses<PublicToken>))]
pub async fn token_logs(
    State(state): State<AppState>,
    Client(client): Client,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let key = match TokenKey::from_params(&params)?.key {
        Some(key) => Some(key),
        None => bearer(&headers).ok().flatten(),
    };
    let key = key
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .ok_or(ApiError::TokenNotFound)?;
    let (token, owner) = throttled(&state, client, async {
        let token = state
            .identity()
            .token(&hash_token_key(&key))
            .await
            .map_err(ApiError::db(Failure::Logs))?
            .filter(|token| token.status == STATUS_ENABLED)
            .ok_or(ApiError::TokenNotFound)?;
        // As new-api: a banned owner's tokens list nothing (403); an owner logbus has not
        // heard of yet makes the token unknown.
        let owner = state
            .identity()
            .user_by_id(token.user_id)
            .await
            .map_err(ApiError::db(Failure::Logs))?
            .ok_or(ApiError::TokenNotFound)?;
        Ok((token, owner))
    })
    .await?;
    if owner.status != STATUS_ENABLED {
        return Err(ApiError::UserDisabled);
    }
    let (rows, first) = state
        .store()
        .token_logs(&token)
        .await
        .map_err(ApiError::db(Failure::Logs))?;
    let transfer = Transfer {
        rows,
        encoder: Some(ListEncoder::new(View::User)),
        first,
    };
    let body = Body::from_stream(futures::stream::try_unfold(transfer, Transfer::next_chunk));
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}
