//! `DELETE /api/log/`: the retention delete, guarded against recent targets, one at a time
//! across replicas, with a dry run.

use axum::extract::State;

use super::{ApiResult, ok};
use crate::auth::AdminAuth;
use crate::error::{ApiError, BadInput, DeleteBusy, Failure};
use crate::params::{DeleteBefore, DeleteCheck, Params};
use crate::state::AppState;
use crate::views::{DeleteResponse, ErrorResponses, SignedInDelete};

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Delete logs older than `target_timestamp` (admin); returns the number of logs deleted (with
/// `dry_run=true`: that would be deleted). A target in the future is refused; one newer than
/// now minus `--retention-min-age-secs` needs `confirm=true`. 409 while another delete runs.
#[utoipa::path(delete, path = "/api/log/", tag = "admin", params(DeleteBefore),
    security(("access_token" = [], "new_api_user" = [])),
    responses((status = 200, body = DeleteResponse), ErrorResponses<SignedInDelete>))]
pub async fn delete_before(
    State(state): State<AppState>,
    AdminAuth(admin): AdminAuth,
    params: Params,
) -> ApiResult<u64> {
    let request = DeleteBefore::from_params(&params)?;
    let target = request.target_timestamp;
    match request.check(unix_now(), state.retention_min_age_secs()) {
        DeleteCheck::Allowed => {}
        DeleteCheck::InTheFuture => {
            return Err(BadInput::TargetInTheFuture {
                target: target.into(),
            }
            .into());
        }
        DeleteCheck::TooRecent { newest_allowed } => {
            return Err(BadInput::TargetTooRecent {
                target: target.into(),
                newest_allowed,
            }
            .into());
        }
    }
    if request.dry_run {
        let count = state
            .store()
            .count_before(target)
            .await
            .map_err(ApiError::db(Failure::Delete))?;
        return ok(count);
    }
    let slot = state.begin_delete(DeleteBusy {
        target,
        admin_id: admin.id,
    })?;
    // Its own task: a client that hangs up must not stop a delete between two statements.
    let (store, admin_id) = (state.store().clone(), admin.id);
    let run = tokio::spawn(async move {
        let _slot = slot;
        store.delete_before(target, admin_id).await
    });
    let deleted = match run.await {
        Ok(outcome) => outcome?,
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    };
    tracing::info!(admin = admin.id, target, deleted, "deleted logs");
    ok(deleted)
}
