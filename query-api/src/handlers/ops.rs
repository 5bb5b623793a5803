//! Readiness, the service's metrics and the fallbacks of unknown paths and methods.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use super::{ApiResult, ok};
use crate::error::{ApiError, Failure};
use crate::state::AppState;
use crate::views::{ErrorResponses, HealthResponse, Open, Static};

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

/// The Prometheus text exposition of the process's metrics ([`crate::metrics`]): not in the
/// envelope and without authentication, like `/healthz`, for the scraper.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "Prometheus text format (version 0.0.4) of the \
        process's metrics; not in the envelope, no authentication", content_type = "text/plain",
        body = String), ErrorResponses<Static>))]
pub async fn metrics() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        crate::metrics::handle().render(),
    )
}

/// Unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// Known paths with a method they do not serve.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
