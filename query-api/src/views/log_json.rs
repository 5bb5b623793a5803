//! A log's JSON split at its display `id`, so that a row many clients are sent (the live
//! tail) is encoded once per view and each client only prefixes its own sequence number.

use logbus_projections::rows::LogRow;

use super::{LogItem, View};

/// What `LogItem`'s JSON starts with when its `id` is 0; `id` is its first field.
const ID_ZERO: &str = "{\"id\":0,";

/// `row`'s JSON as `view` shows it, without the leading `{"id":N,` (see [`with_id`]).
pub fn without_id(row: &LogRow, view: View) -> String {
    let json = serde_json::to_string(&LogItem::new(row.clone(), 0, view))
        // A LogItem is strings and numbers: it always serializes.
        .unwrap_or_else(|_| String::from("{\"id\":0,\"event_id\":\"\"}"));
    match json.strip_prefix(ID_ZERO) {
        Some(rest) => rest.to_owned(),
        None => json,
    }
}

/// The whole JSON of a log: [`without_id`]'s text with `id` put back in front.
pub fn with_id(without_id: &str, id: u64) -> String {
    format!("{{\"id\":{id},{without_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared sample, with a content that needs escaping and a negative quota.
    fn row() -> LogRow {
        LogRow {
            content: "line \"one\"\nline two".into(),
            quota: -5,
            ..crate::views::tests::sample_row()
        }
    }

    #[test]
    fn split_and_joined_again_it_is_the_items_json_in_each_view() {
        for view in [View::Admin, View::User] {
            for id in [0, 1, 42, u64::MAX] {
                let whole = serde_json::to_string(&LogItem::new(row(), id, view)).unwrap();
                assert_eq!(
                    with_id(&without_id(&row(), view), id),
                    whole,
                    "{view:?} {id}"
                );
            }
        }
    }

    #[test]
    fn the_user_view_keeps_hiding_what_the_user_list_hides() {
        let user = without_id(&row(), View::User);
        for hidden in ["admin_info", "audit_info", "10.0.0.1", "secret channel"] {
            assert!(!user.contains(hidden), "{hidden} in {user}");
        }
        let admin = without_id(&row(), View::Admin);
        assert!(admin.contains("admin_info") && admin.contains("10.0.0.1"));
    }
}
