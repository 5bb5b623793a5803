//! `GET /api/log/token`: public (the key is the credential), CORS-enabled.

use axum::extract::State;
use axum::http::HeaderMap;
use logbus_projections::identity::hash_token_key;
use logbus_projections::rows::identity_codes::STATUS_ENABLED;

use super::{ApiResult, ok};
use crate::auth::bearer;
use crate::error::{ApiError, Failure};
use crate::params::{Params, TokenKey};
use crate::state::AppState;
use crate::views::{ErrorResponses, LogItem, LogListResponse, PublicToken, View, items};

/// The logs of one API token (public, CORS-enabled); newest first, at most 1000.
#[utoipa::path(get, path = "/api/log/token", tag = "public", params(TokenKey),
    responses((status = 200, body = LogListResponse), ErrorResponses<PublicToken>))]
pub async fn token_logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
) -> ApiResult<Vec<LogItem>> {
    let key = match TokenKey::from_params(&params)?.key {
        Some(key) => Some(key),
        None => bearer(&headers).ok().flatten(),
    };
    let key = key
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .ok_or(ApiError::TokenNotFound)?;
    let token = state
        .identity()
        .token(&hash_token_key(&key))
        .await
        .map_err(ApiError::db(Failure::Logs))?
        .filter(|token| token.status == STATUS_ENABLED)
        .ok_or(ApiError::TokenNotFound)?;
    // As new-api: a banned owner's tokens list nothing (403); an owner logbus has not heard
    // of yet makes the token unknown.
    let owner = state
        .identity()
        .user_by_id(token.user_id)
        .await
        .map_err(ApiError::db(Failure::Logs))?
        .ok_or(ApiError::TokenNotFound)?;
    if owner.status != STATUS_ENABLED {
        return Err(ApiError::UserDisabled);
    }
    let rows = state
        .store()
        .token_logs(&token)
        .await
        .map_err(ApiError::db(Failure::Logs))?;
    ok(items(rows, 0, View::User))
}
