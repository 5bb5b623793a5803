//! The failures of the retention delete that say more than new-api's generic message: the
//! lock held elsewhere, and a delete that stopped part-way.

use super::{DbError, Lang};

/// Another retention delete (in this or another API replica) holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a delete before {target} by admin {admin_id} is running")]
pub struct DeleteBusy {
    pub target: u32,
    pub admin_id: i64,
}

impl DeleteBusy {
    pub(super) fn message(&self, lang: Lang) -> String {
        let DeleteBusy { target, admin_id } = self;
        lang.pick(
            format!("另一个删除正在进行（target_timestamp {target}，管理员 {admin_id}），请等它结束后重试"),
            format!("another delete is running (target_timestamp {target}, admin {admin_id}); try again once it has finished"),
        )
    }
}

/// A retention delete that failed part-way: what was done, what failed and what is left
/// inconsistent. Every step is idempotent, so the same delete repeated completes it.
#[derive(Debug, thiserror::Error)]
#[error("done [{}], failed at {failed}, not done [{}]", done.join("; "), not_done.join("; "))]
pub struct DeleteIncomplete {
    /// The steps that completed, as described by the plan.
    pub done: Vec<String>,
    /// The step that failed.
    pub failed: String,
    /// The steps that were not attempted.
    pub not_done: Vec<String>,
    /// What reads may get wrong until the delete is repeated (empty: nothing).
    pub inconsistent: Vec<String>,
    /// The ClickHouse failure, or none when the step's own check failed.
    #[source]
    pub source: Option<DbError>,
}

impl DeleteIncomplete {
    pub(super) fn message(&self, lang: Lang) -> String {
        let list = |steps: &[String]| {
            if steps.is_empty() {
                "-".to_owned()
            } else {
                steps.join("; ")
            }
        };
        let (done, not_done) = (list(&self.done), list(&self.not_done));
        let failed = &self.failed;
        let inconsistent = list(&self.inconsistent);
        lang.pick(
            format!("删除日志未完成。已完成：{done}。失败：{failed}。未执行：{not_done}。在重复同一删除前不一致的统计：{inconsistent}。重复同一删除请求即可完成"),
            format!("The delete did not finish. Done: {done}. Failed: {failed}. Not done: {not_done}. Inconsistent until the same delete is repeated: {inconsistent}. Repeating the same delete completes it"),
        )
    }
}
