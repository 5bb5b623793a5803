//! `DELETE /api/log/`: the retention delete, one at a time.

use axum::extract::State;

use super::{ApiResult, ok};
use crate::auth::AdminAuth;
use crate::error::{ApiError, Failure};
use crate::params::{DeleteBefore, Params};
use crate::state::AppState;
use crate::views::{DeleteResponse, ErrorResponses, SignedInDelete};

/// Delete logs older than `target_timestamp` (admin); returns the number of logs deleted.
#[utoipa::path(delete, path = "/api/log/", tag = "admin", params(DeleteBefore),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = DeleteResponse), ErrorResponses<SignedInDelete>))]
pub async fn delete_before(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    params: Params,
) -> ApiResult<u64> {
    let target = DeleteBefore::from_params(&params)?.target_timestamp;
    let _one_at_a_time = state.delete_lock().lock().await;
    let deleted = state
        .store()
        .delete_before(target)
        .await
        .map_err(ApiError::db(Failure::Delete))?;
    tracing::info!(admin = admin.id, target, deleted, "deleted logs");
    ok(deleted)
}
