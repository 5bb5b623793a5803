//! new-api's `logs`, `users`, `tokens` and `channels` tables as gorm's `AutoMigrate` creates
//! them on each database (model/log.go, user.go, token.go, channel.go; column types are
//! gorm's defaults: Go `int` is `bigint` on MySQL and PostgreSQL, an indexed or defaulted
//! string is `varchar(191)` on MySQL, `text` elsewhere; see
//! ../shared/reference/new-api-dashboard-and-schema.md §2). The bridge never creates tables:
//! this is for the tests, the demo database and the benchmark, which need a source shaped
//! like a real one.

use crate::dialect::Dialect;

/// The `CREATE TABLE` and `CREATE INDEX` statements, in order.
pub fn create_statements(dialect: Dialect) -> Vec<String> {
    let t = Types::of(dialect);
    let q = |name: &str| dialect.quote(name);
    let (group, key) = (q("group"), q("key"));
    let mut statements = vec![
        format!(
            "CREATE TABLE logs (id {pk}, user_id {int}, created_at {int}, {type_} {int}, \
             content {text}, username {istr} DEFAULT '', token_name {istr} DEFAULT '', \
             model_name {istr} DEFAULT '', quota {int} DEFAULT 0, prompt_tokens {int} DEFAULT 0, \
             completion_tokens {int} DEFAULT 0, use_time {int} DEFAULT 0, is_stream {bool}, \
             channel_id {int}, token_id {int} DEFAULT 0, {group} {istr}, ip {istr} DEFAULT '', \
             other {text}, request_id varchar(64) DEFAULT ''{pk_constraint})",
            pk = t.pk,
            int = t.int,
            type_ = q("type"),
            text = t.text,
            istr = t.indexed_string,
            bool = t.boolean,
            pk_constraint = t.pk_constraint,
        ),
        format!(
            "CREATE TABLE users (id {pk}, username {istr} UNIQUE, password {text} NOT NULL, \
             display_name {istr}, role {int32} DEFAULT 1, status {int32} DEFAULT 1, \
             email {istr}, github_id {istr}, discord_id {istr}, oidc_id {istr}, \
             wechat_id {istr}, telegram_id {istr}, access_token char(32), \
             quota {int32} DEFAULT 0, used_quota {int32} DEFAULT 0, request_count {int32} DEFAULT 0, \
             {group} varchar(64) DEFAULT 'default', aff_code varchar(32), \
             aff_count {int32} DEFAULT 0, aff_quota {int32} DEFAULT 0, aff_history {int32} DEFAULT 0, \
             inviter_id {int32}, deleted_at {time}, linux_do_id {istr}, setting {text}, \
             remark varchar(255), stripe_customer varchar(64), created_at {int}, \
             last_login_at {int} DEFAULT 0{pk_constraint})",
            pk = t.pk,
            istr = t.indexed_string,
            text = t.text,
            int32 = t.int32,
            int = t.int,
            time = t.time,
            pk_constraint = t.pk_constraint,
        ),
        format!(
            "CREATE TABLE tokens (id {pk}, user_id {int}, {key} varchar(128), \
             status {int} DEFAULT 1, name {istr}, created_time {int}, accessed_time {int}, \
             expired_time {int} DEFAULT -1, remain_quota {int} DEFAULT 0, unlimited_quota {bool}, \
             model_limits_enabled {bool}, model_limits {text}, allow_ips {dstr} DEFAULT '', \
             used_quota {int} DEFAULT 0, {group} {dstr} DEFAULT '', cross_group_retry {bool}, \
             auto_groups {text}, deleted_at {time}{pk_constraint})",
            pk = t.pk,
            int = t.int,
            istr = t.indexed_string,
            bool = t.boolean,
            text = t.text,
            dstr = t.indexed_string,
            time = t.time,
            pk_constraint = t.pk_constraint,
        ),
        format!(
            "CREATE TABLE channels (id {pk}, {type_} {int} DEFAULT 0, {key} {text} NOT NULL, \
             status {int} DEFAULT 1, name {istr}, base_url {istr} DEFAULT '', models {text}, \
             {group} varchar(64) DEFAULT 'default', created_time {int}{pk_constraint})",
            pk = t.pk,
            type_ = q("type"),
            int = t.int,
            text = t.text,
            istr = t.indexed_string,
            pk_constraint = t.pk_constraint,
        ),
    ];
    let indexes = [
        ("idx_created_at_id", "logs", "id, created_at", false),
        ("idx_created_at_type", "logs", "created_at, type", false),
        (
            "index_username_model_name",
            "logs",
            "model_name, username",
            false,
        ),
        ("idx_logs_user_id", "logs", "user_id", false),
        ("idx_logs_token_id", "logs", "token_id", false),
        ("idx_logs_channel_id", "logs", "channel_id", false),
        ("idx_logs_request_id", "logs", "request_id", false),
        ("idx_users_access_token", "users", "access_token", true),
        ("idx_users_aff_code", "users", "aff_code", true),
        ("idx_users_deleted_at", "users", "deleted_at", false),
        ("idx_tokens_key", "tokens", "key", true),
        ("idx_tokens_user_id", "tokens", "user_id", false),
        ("idx_tokens_deleted_at", "tokens", "deleted_at", false),
    ];
    for (name, table, columns, unique) in indexes {
        let columns: Vec<String> = columns.split(", ").map(q).collect();
        let unique = if unique { "UNIQUE " } else { "" };
        statements.push(format!(
            "CREATE {unique}INDEX {name} ON {table} ({})",
            columns.join(", ")
        ));
    }
    statements
}

/// gorm's column types per database.
struct Types {
    pk: &'static str,
    pk_constraint: &'static str,
    int: &'static str,
    int32: &'static str,
    text: &'static str,
    indexed_string: &'static str,
    boolean: &'static str,
    time: &'static str,
}

impl Types {
    fn of(dialect: Dialect) -> Self {
        match dialect {
            Dialect::Postgres => Types {
                pk: "bigserial",
                pk_constraint: ", PRIMARY KEY (id)",
                int: "bigint",
                int32: "integer",
                text: "text",
                indexed_string: "text",
                boolean: "boolean",
                time: "timestamptz",
            },
            Dialect::MySql => Types {
                pk: "bigint AUTO_INCREMENT",
                pk_constraint: ", PRIMARY KEY (id)",
                int: "bigint",
                int32: "int",
                text: "longtext",
                indexed_string: "varchar(191)",
                boolean: "boolean",
                time: "datetime(3) NULL",
            },
            Dialect::Sqlite => Types {
                pk: "integer",
                pk_constraint: ", PRIMARY KEY (id)",
                int: "integer",
                int32: "integer",
                text: "text",
                indexed_string: "text",
                boolean: "numeric",
                time: "datetime",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dialect_gets_the_four_tables_and_their_indexes() {
        for dialect in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
            let statements = create_statements(dialect);
            assert_eq!(statements.len(), 4 + 13);
            assert!(statements[0].starts_with("CREATE TABLE logs"));
            assert!(
                statements
                    .iter()
                    .any(|s| s.contains("UNIQUE INDEX idx_tokens_key"))
            );
        }
        let mysql = create_statements(Dialect::MySql).join(";");
        assert!(mysql.contains("`group` varchar(191)") && mysql.contains("`key` varchar(128)"));
        let pg = create_statements(Dialect::Postgres).join(";");
        assert!(pg.contains("id bigserial") && pg.contains("deleted_at timestamptz"));
    }
}
