//! The SQL the bridge sends to new-api's database, per dialect, pure. Each query reads every
//! value as a 64-bit integer or a text (casts and `COALESCE` in SQL), so one row type decodes
//! the three databases alike; columns a schema version lacks are read as their default.

use std::collections::BTreeSet;

/// The SQL dialect of a source database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    MySql,
    Sqlite,
}

/// The columns a table has in this database (new-api's schema varies between releases).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Columns(BTreeSet<String>);

impl Columns {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        Self(names.into_iter().map(|n| n.into().to_lowercase()).collect())
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Columns a table must have for the bridge to read it (every new-api release has them).
pub const REQUIRED_LOG_COLUMNS: &[&str] = &["id", "user_id", "created_at", "type"];
pub const REQUIRED_USER_COLUMNS: &[&str] = &["id", "username", "role", "status"];
pub const REQUIRED_TOKEN_COLUMNS: &[&str] = &["id", "user_id", "key", "status"];

impl Dialect {
    /// An identifier quoted (`group` and `key` are reserved words).
    pub fn quote(self, name: &str) -> String {
        match self {
            Dialect::MySql => format!("`{name}`"),
            Dialect::Postgres | Dialect::Sqlite => format!("\"{name}\""),
        }
    }

    /// The `n`-th (1-based) bind parameter.
    pub fn param(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            Dialect::MySql | Dialect::Sqlite => "?".to_owned(),
        }
    }

    fn bigint(self, expr: &str) -> String {
        let ty = match self {
            Dialect::Postgres => "BIGINT",
            Dialect::MySql => "SIGNED",
            Dialect::Sqlite => "INTEGER",
        };
        format!("CAST({expr} AS {ty})")
    }

    fn text(self, expr: &str) -> String {
        let ty = match self {
            Dialect::MySql => "CHAR",
            Dialect::Postgres | Dialect::Sqlite => "TEXT",
        };
        format!("COALESCE(CAST({expr} AS {ty}), '')")
    }

    /// `column` as a BIGINT named `alias` (NULL: `default`; absent from the table: `default`).
    fn int_column(self, columns: &Columns, column: &str, default: i64, alias: &str) -> String {
        if columns.has(column) {
            let value = format!("COALESCE({}, {default})", self.quote(column));
            format!("{} AS {alias}", self.bigint(&value))
        } else {
            format!("{} AS {alias}", self.bigint(&default.to_string()))
        }
    }

    /// A boolean column (PostgreSQL boolean, MySQL tinyint(1), SQLite numeric) as 0 or 1.
    fn flag_column(self, columns: &Columns, column: &str, alias: &str) -> String {
        let value = if columns.has(column) {
            format!("CASE WHEN {} THEN 1 ELSE 0 END", self.quote(column))
        } else {
            "0".to_owned()
        };
        format!("{} AS {alias}", self.bigint(&value))
    }

    /// `deleted_at IS NOT NULL` as 0 or 1 (gorm's soft delete).
    fn deleted_column(self, columns: &Columns) -> String {
        let value = if columns.has("deleted_at") {
            "CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END"
        } else {
            "0"
        };
        format!("{} AS deleted", self.bigint(value))
    }

    fn text_column(self, columns: &Columns, column: &str, alias: &str) -> String {
        if columns.has(column) {
            format!("{} AS {alias}", self.text(&self.quote(column)))
        } else {
            format!("{} AS {alias}", self.text("''"))
        }
    }

    /// The select list of `logs`, in [`crate::mapping::LogSourceRow`]'s names.
    fn log_select(self, c: &Columns) -> String {
        [
            self.int_column(c, "id", 0, "id"),
            self.int_column(c, "user_id", 0, "user_id"),
            self.int_column(c, "created_at", 0, "created_at"),
            self.int_column(c, "type", 0, "log_type"),
            self.text_column(c, "content", "content"),
            self.text_column(c, "username", "username"),
            self.text_column(c, "token_name", "token_name"),
            self.text_column(c, "model_name", "model_name"),
            self.int_column(c, "quota", 0, "quota"),
            self.int_column(c, "prompt_tokens", 0, "prompt_tokens"),
            self.int_column(c, "completion_tokens", 0, "completion_tokens"),
            self.int_column(c, "use_time", 0, "use_time"),
            self.flag_column(c, "is_stream", "is_stream"),
            self.int_column(c, "channel_id", 0, "channel_id"),
            self.int_column(c, "token_id", 0, "token_id"),
            self.text_column(c, "group", "log_group"),
            self.text_column(c, "ip", "ip"),
            self.text_column(c, "other", "other"),
            self.text_column(c, "request_id", "request_id"),
            self.text_column(c, "upstream_request_id", "upstream_request_id"),
        ]
        .join(", ")
    }

    /// At most `$2` rows with `id > $1`, in id order. `ORDER BY logs.id`, not `id`: a bare
    /// name means the output column, here the `CAST(COALESCE(id, 0) …) AS id` expression,
    /// which no index serves, so every batch would sort the whole table (seconds per batch
    /// at 10M rows on PostgreSQL and MySQL).
    pub fn logs_after(self, columns: &Columns) -> String {
        format!(
            "SELECT {} FROM logs WHERE logs.id > {} ORDER BY logs.id LIMIT {}",
            self.log_select(columns),
            self.param(1),
            self.param(2)
        )
    }

    /// The rows whose id lies in one of `ranges` ranges (`id BETWEEN $1 AND $2 OR …`).
    pub fn logs_in_ranges(self, columns: &Columns, ranges: usize) -> String {
        let conditions: Vec<String> = (0..ranges)
            .map(|i| {
                format!(
                    "logs.id BETWEEN {} AND {}",
                    self.param(2 * i + 1),
                    self.param(2 * i + 2)
                )
            })
            .collect();
        format!(
            "SELECT {} FROM logs WHERE {} ORDER BY logs.id",
            self.log_select(columns),
            conditions.join(" OR ")
        )
    }

    pub fn max_log_id(self) -> &'static str {
        match self {
            Dialect::Postgres => "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM logs",
            Dialect::MySql => "SELECT CAST(COALESCE(MAX(id), 0) AS SIGNED) FROM logs",
            Dialect::Sqlite => "SELECT CAST(COALESCE(MAX(id), 0) AS INTEGER) FROM logs",
        }
    }

    /// Every user, soft-deleted ones too (they are published as disabled).
    pub fn users(self, c: &Columns) -> String {
        let select = [
            self.int_column(c, "id", 0, "id"),
            self.text_column(c, "username", "username"),
            self.int_column(c, "role", 0, "role"),
            self.int_column(c, "status", 0, "status"),
            self.text_column(c, "group", "user_group"),
            self.text_column(c, "access_token", "access_token"),
            self.deleted_column(c),
        ];
        format!("SELECT {} FROM users ORDER BY users.id", select.join(", "))
    }

    /// Every token, soft-deleted ones too.
    pub fn tokens(self, c: &Columns) -> String {
        let select = [
            self.int_column(c, "id", 0, "id"),
            self.int_column(c, "user_id", 0, "user_id"),
            self.text_column(c, "name", "name"),
            self.text_column(c, "key", "token_key"),
            self.int_column(c, "status", 0, "status"),
            self.int_column(c, "expired_time", -1, "expired_time"),
            self.int_column(c, "remain_quota", 0, "remain_quota"),
            self.flag_column(c, "unlimited_quota", "unlimited_quota"),
            self.deleted_column(c),
        ];
        format!(
            "SELECT {} FROM tokens ORDER BY tokens.id",
            select.join(", ")
        )
    }

    /// `id, name` of every channel (for the events' `channel_name`).
    pub fn channels(self) -> String {
        format!(
            "SELECT {}, {} FROM channels",
            self.bigint("id"),
            self.text("name")
        )
    }

    /// The column names of table `$1` (lower case; the table in the connection's schema).
    pub fn columns_of(self) -> String {
        match self {
            Dialect::Postgres => {
                "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1"
                    .to_owned()
            }
            Dialect::MySql => "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = ?"
                .to_owned(),
            Dialect::Sqlite => "SELECT name FROM pragma_table_info(?)".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gorm_logs() -> Columns {
        Columns::new([
            "id",
            "user_id",
            "created_at",
            "type",
            "content",
            "username",
            "token_name",
            "model_name",
            "quota",
            "prompt_tokens",
            "completion_tokens",
            "use_time",
            "is_stream",
            "channel_id",
            "token_id",
            "group",
            "ip",
            "other",
        ])
    }

    #[test]
    fn reserved_words_are_quoted_per_dialect_and_params_numbered() {
        let pg = Dialect::Postgres.logs_after(&gorm_logs());
        assert!(
            pg.contains(r#"COALESCE(CAST("group" AS TEXT), '') AS log_group"#),
            "{pg}"
        );
        assert!(
            pg.ends_with("WHERE logs.id > $1 ORDER BY logs.id LIMIT $2"),
            "{pg}"
        );
        let my = Dialect::MySql.logs_after(&gorm_logs());
        assert!(
            my.contains("COALESCE(CAST(`group` AS CHAR), '') AS log_group"),
            "{my}"
        );
        assert!(my.contains("CAST(CASE WHEN `is_stream` THEN 1 ELSE 0 END AS SIGNED)"));
        assert!(
            my.ends_with("WHERE logs.id > ? ORDER BY logs.id LIMIT ?"),
            "{my}"
        );
        let tokens = Dialect::MySql.tokens(&Columns::new(["id", "key"]));
        assert!(tokens.contains("`key`"), "{tokens}");
    }

    #[test]
    fn columns_a_release_lacks_are_read_as_defaults() {
        let sql = Dialect::Sqlite.logs_after(&gorm_logs());
        assert!(
            sql.contains("COALESCE(CAST('' AS TEXT), '') AS request_id"),
            "{sql}"
        );
        let with = Columns::new(gorm_logs().0.into_iter().chain(["request_id".to_owned()]));
        assert!(
            Dialect::Sqlite
                .logs_after(&with)
                .contains(r#"COALESCE(CAST("request_id" AS TEXT), '') AS request_id"#)
        );
        let old_tokens = Dialect::Postgres.tokens(&Columns::new(["id", "user_id", "key"]));
        assert!(
            old_tokens.contains("CAST(-1 AS BIGINT) AS expired_time"),
            "{old_tokens}"
        );
        assert!(
            old_tokens.contains("CAST(0 AS BIGINT) AS deleted"),
            "{old_tokens}"
        );
        let users = Dialect::Postgres.users(&Columns::new(["id", "deleted_at"]));
        assert!(users.contains("CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END"));
    }

    #[test]
    fn range_queries_bind_two_params_per_range() {
        let sql = Dialect::Postgres.logs_in_ranges(&gorm_logs(), 2);
        assert!(
            sql.ends_with(
                "WHERE logs.id BETWEEN $1 AND $2 OR logs.id BETWEEN $3 AND $4 ORDER BY logs.id"
            ),
            "{sql}"
        );
        let sql = Dialect::MySql.logs_in_ranges(&gorm_logs(), 1);
        assert!(
            sql.ends_with("WHERE logs.id BETWEEN ? AND ? ORDER BY logs.id"),
            "{sql}"
        );
    }

    #[test]
    fn column_names_compare_in_lower_case() {
        let columns = Columns::new(["ID", "Request_Id"]);
        assert!(columns.has("id") && columns.has("request_id"));
        assert!(!columns.has("other"));
    }
}
