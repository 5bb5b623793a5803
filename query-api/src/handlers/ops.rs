//! Readiness and the fallbacks of unknown paths and methods.

use axum::extract::State;

use super::{ApiResult, ok};
use crate::error::{ApiError, Failure};
use crate::state::AppState;
use crate::views::{ErrorResponses, HealthResponse, Open};

/// Readiness: ClickHouse answers.
#[utoipa::path(get, path = "/healthz", tag = "ops",
    responses((status = 200, body = HealthResponse), ErrorResponses<Open>))]
pub async fn healthz(State(state): State<AppState>) -> ApiResult<&'static str> {
    state
        .store()
        .ping()
        .await
        .map_err(ApiError::db(Failure::Health))?;
    ok("ok")
}

/// Unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Known paths with a method they do not serve.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
