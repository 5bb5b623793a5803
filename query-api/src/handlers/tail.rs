//! `GET /api/log/tail` and `/api/log/self/tail`: the live tail as Server-Sent Events
//! ([`crate::tail`] reads and fans out; this module speaks SSE).

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use metrics::counter;

use crate::auth::{AdminAuth, UserAuth};
use crate::error::{ApiError, BadInput, Failure};
use crate::metrics::names;
use crate::params::{LogFilter, Params};
use crate::state::AppState;
use crate::tail::{LastEventId, TailItem, TailRefusal, TailStartError, TailStream};
use crate::views::{ErrorResponses, SignedIn, View, log_json};

fn event(item: TailItem, sequence: &mut u64, view: View) -> Event {
    match item {
        TailItem::Row(cursor, row) => {
            *sequence += 1;
            counter!(names::TAIL_EVENTS).increment(1);
            Event::default()
                .id(cursor.to_string())
                .data(log_json::with_id(&row.without_id(view), *sequence))
        }
        TailItem::Lagged => {
            counter!(names::TAIL_LAGGED).increment(1);
            Event::default().event("lagged").data("{}")
        }
    }
}

async fn tail_of(
    state: &AppState,
    user_id: i64,
    filter: LogFilter,
    headers: &HeaderMap,
    view: View,
) -> Result<Response, ApiError> {
    let resume = LastEventId::from_headers(headers)?;
    let tail = state.tail();
    let slot = tail.open(user_id).map_err(|refusal| match refusal {
        TailRefusal::UserLimit(max) => ApiError::TailLimit {
            per_user: true,
            max,
        },
        TailRefusal::GlobalLimit(max) => ApiError::TailLimit {
            per_user: false,
            max,
        },
    })?;
    let stream = TailStream::start(tail, slot, filter, resume)
        .await
        .map_err(|error| match error {
            TailStartError::Db(source) => ApiError::db(Failure::Logs)(source),
            TailStartError::BeyondHorizon(horizon) => {
                ApiError::BadRequest(BadInput::ResumeBeyondHorizon {
                    horizon_secs: horizon.as_secs(),
                })
            }
        })?;
    let mut sequence = 0;
    let events = stream
        .rows()
        .map(move |item| Ok::<_, Infallible>(event(item, &mut sequence, view)));
    let keep_alive = KeepAlive::new()
        .interval(tail.config().heartbeat())
        .text("keep-alive");
    // nginx buffers responses unless told not to: a tail must not wait for a full buffer.
    let no_buffering = [(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    )];
    Ok((no_buffering, Sse::new(events).keep_alive(keep_alive)).into_response())
}

/// Every new log as it becomes queryable (admin): Server-Sent Events, one per log, each
/// with a resumable `id`; filters as for the list.
#[utoipa::path(get, path = "/api/log/tail", tag = "admin", params(LogFilter, LastEventId),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "Events whose `data` is a log as in the list's `items` and whose `id` \
                       resumes the tail as `Last-Event-ID`; `event: lagged` ends a stream that \
                       fell behind; `: keep-alive` comments while idle (docs/api.md)"),
        ErrorResponses<SignedIn>))]
pub async fn tail_all(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let filter = LogFilter::from_params(&params, true)?;
    tail_of(&state, admin.id, filter, &headers, View::Admin).await
}

/// The caller's new logs as they become queryable (user), as `/api/log/tail` sends them in
/// the user view.
#[utoipa::path(get, path = "/api/log/self/tail", tag = "user", params(LogFilter, LastEventId),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "As for `/api/log/tail`, the caller's logs only, in the user view"),
        ErrorResponses<SignedIn>))]
pub async fn tail_self(
    State(state): State<AppState>,
    UserAuth(user): UserAuth,
    headers: HeaderMap,
    params: Params,
) -> Result<Response, ApiError> {
    let mut filter = LogFilter::from_params(&params, false)?;
    filter.user_id = Some(user.id);
    tail_of(&state, user.id, filter, &headers, View::User).await
}
