//! The handlers, one file per endpoint family: [`logs`] (list and search), [`export`], [`stat`],
//! [`series`] (the stat over time), [`data`] (new-api's dashboard), [`token`] (the public
//! token endpoint), [`retention`] (the delete), [`tail`] (the live tail's Server-Sent Events) and [`ops`] (health and the fallbacks). Each reads its typed parameters from [`crate::params`], queries through
//! [`crate::store`] and answers a [`crate::views`] object or an [`ApiError`].

use axum::Json;

use crate::error::ApiError;
use crate::views::Envelope;

pub mod data;
pub mod export;
pub mod logs;
pub mod ops;
pub mod retention;
pub mod series;
pub mod stat;
pub mod tail;
pub mod token;

/// What every handler answers: the envelope of a success, or an error's envelope.
pub type ApiResult<T> = Result<Json<Envelope<T>>, ApiError>;

fn ok<T>(data: T) -> ApiResult<T> {
    Ok(Json(Envelope::ok(data)))
}
