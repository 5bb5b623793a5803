//! Least privilege: the ClickHouse roles of logbus and what each may do, as SQL that
//! `logbus-ingest grants` prints or applies (docs/operations.md). Pure: the statements are
//! built here and run by the caller.
//!
//! - `logbus_ingest`: the worker. It creates and migrates the database and writes every
//!   table (its inserts into `logs`, `users` and `tokens` also feed their materialized views).
//! - `logbus_api`: the query API. It reads the log, rollup and identity tables; the retention
//!   delete alone writes: lightweight deletes and partition drops on `logs` and
//!   `logs_minute`, the rebuilt minute inserted into `logs_minute`, its lease in
//!   `retention_lock`. Its reads are sent with `readonly = 2` besides.
//! - `logbus_reader`: analysts. It reads the logs and the rollup, never the identity tables
//!   (they hold credential hashes), under a settings profile that bounds what one query may
//!   cost.

use logbus_runtime::Secret;

use crate::{Error, Result, tables, validate_database_name};

pub const INGEST_ROLE: &str = "logbus_ingest";
pub const API_ROLE: &str = "logbus_api";
pub const READER_ROLE: &str = "logbus_reader";
pub const READER_PROFILE: &str = "logbus_reader_profile";

/// What one analyst query may cost (the reader profile's settings, each a ceiling the reader
/// may lower but not raise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderLimits {
    pub max_execution_time_secs: u32,
    pub max_memory_usage_bytes: u64,
    pub max_result_rows: u64,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        Self {
            max_execution_time_secs: 60,
            max_memory_usage_bytes: 4_000_000_000,
            max_result_rows: 1_000_000,
        }
    }
}

/// A role and the ClickHouse user that gets it as its default role; with a password, the user
/// is created if missing and given that password (so rerunning with a new one rotates it).
#[derive(Debug, Clone)]
pub struct Member {
    pub role: &'static str,
    pub user: String,
    pub password: Option<Secret>,
}

/// One statement to run; its `Display` and `Debug` show a password as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Statement {
    sql: String,
    shown: String,
}

impl Statement {
    fn plain(sql: String) -> Self {
        Self {
            shown: sql.clone(),
            sql,
        }
    }

    /// The SQL to send, password included.
    pub fn sql(&self) -> &str {
        &self.sql
    }
}

impl std::fmt::Display for Statement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Debug for Statement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.shown)
    }
}

/// A string literal of ClickHouse SQL.
fn literal(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('\'');
    quoted
}

/// The tables the API reads.
const API_READS: [&str; 7] = [
    tables::LOGS,
    tables::LOGS_MINUTE,
    tables::USERS,
    tables::TOKENS,
    tables::USERS_BY_ACCESS_TOKEN,
    tables::TOKENS_BY_KEY,
    tables::RETENTION_LOCK,
];

/// The tables analysts read: the logs and the rollup, no identities.
pub const READER_TABLES: [&str; 2] = [tables::LOGS, tables::LOGS_MINUTE];

/// A ClickHouse identifier, backquoted (names are validated first, so no quote can occur).
fn quoted(name: &str) -> String {
    format!("`{name}`")
}

fn validate_user(user: &str) -> Result<()> {
    validate_database_name(user).map_err(|_| Error::InvalidUserName(user.to_owned()))
}

/// Every statement that creates the roles and the reader profile and grants what each role
/// needs on `database`, then gives each member its role. Idempotent: the roles are created if
/// missing, the profile replaced, grants repeated harmlessly.
pub fn statements(
    database: &str,
    limits: &ReaderLimits,
    members: &[Member],
) -> Result<Vec<Statement>> {
    let mut sql: Vec<Statement> = role_statements(database, limits)?
        .into_iter()
        .map(Statement::plain)
        .collect();
    for Member {
        role,
        user,
        password,
    } in members
    {
        validate_user(user)?;
        let user = quoted(user);
        if let Some(password) = password {
            sql.push(Statement::plain(format!(
                "CREATE USER IF NOT EXISTS {user}"
            )));
            let identified = |password: &str| {
                format!(
                    "ALTER USER {user} IDENTIFIED WITH sha256_password BY {}",
                    literal(password)
                )
            };
            sql.push(Statement {
                sql: identified(password.expose()),
                shown: identified("***"),
            });
        }
        sql.push(Statement::plain(format!("GRANT {role} TO {user}")));
        sql.push(Statement::plain(format!(
            "SET DEFAULT ROLE {role} TO {user}"
        )));
    }
    Ok(sql)
}

fn role_statements(database: &str, limits: &ReaderLimits) -> Result<Vec<String>> {
    validate_database_name(database)?;
    let db = quoted(database);
    let mut sql = Vec::new();
    for role in [INGEST_ROLE, API_ROLE, READER_ROLE] {
        sql.push(format!("CREATE ROLE IF NOT EXISTS {role}"));
    }

    sql.push(format!("GRANT CREATE DATABASE ON {db}.* TO {INGEST_ROLE}"));
    sql.push(format!(
        "GRANT SELECT, INSERT, CREATE TABLE, CREATE VIEW, ALTER TABLE, ALTER VIEW \
         ON {db}.* TO {INGEST_ROLE}"
    ));

    for table in API_READS {
        sql.push(format!("GRANT SELECT ON {db}.{table} TO {API_ROLE}"));
    }
    for table in [tables::LOGS, tables::LOGS_MINUTE] {
        sql.push(format!(
            "GRANT ALTER DELETE, ALTER DROP PARTITION ON {db}.{table} TO {API_ROLE}"
        ));
    }
    for table in [tables::LOGS_MINUTE, tables::RETENTION_LOCK] {
        sql.push(format!("GRANT INSERT ON {db}.{table} TO {API_ROLE}"));
    }

    for table in READER_TABLES {
        sql.push(format!("GRANT SELECT ON {db}.{table} TO {READER_ROLE}"));
    }
    let ReaderLimits {
        max_execution_time_secs: time,
        max_memory_usage_bytes: memory,
        max_result_rows: rows,
    } = limits;
    sql.push(format!(
        "CREATE SETTINGS PROFILE OR REPLACE {READER_PROFILE} SETTINGS \
         readonly = 2, \
         max_execution_time = {time} MAX {time}, \
         max_memory_usage = {memory} MAX {memory}, \
         max_result_rows = {rows} MAX {rows}, \
         result_overflow_mode = 'throw' CONST \
         TO {READER_ROLE}"
    ));
    Ok(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generated() -> Vec<String> {
        statements(
            "logbus",
            &ReaderLimits::default(),
            &[
                Member {
                    role: INGEST_ROLE,
                    user: "ingest_user".into(),
                    password: Some(Secret::new("pa'ss\\word")),
                },
                Member {
                    role: READER_ROLE,
                    user: "analyst".into(),
                    password: None,
                },
            ],
        )
        .expect("valid names")
        .iter()
        .map(|s| s.sql().to_owned())
        .collect()
    }

    fn grants_to(role: &str) -> Vec<String> {
        generated()
            .into_iter()
            .filter(|s| s.starts_with("GRANT ") && s.ends_with(&format!(" TO {role}")))
            .collect()
    }

    #[test]
    fn the_reader_reads_logs_and_rollup_and_never_an_identity_table() {
        assert_eq!(
            grants_to(READER_ROLE),
            [
                "GRANT SELECT ON `logbus`.logs TO logbus_reader",
                "GRANT SELECT ON `logbus`.logs_minute TO logbus_reader",
            ]
        );
        let profile = generated()
            .into_iter()
            .find(|s| s.starts_with("CREATE SETTINGS PROFILE"))
            .expect("a profile");
        assert_eq!(
            profile,
            "CREATE SETTINGS PROFILE OR REPLACE logbus_reader_profile SETTINGS readonly = 2, \
             max_execution_time = 60 MAX 60, max_memory_usage = 4000000000 MAX 4000000000, \
             max_result_rows = 1000000 MAX 1000000, result_overflow_mode = 'throw' CONST \
             TO logbus_reader"
        );
    }

    #[test]
    fn the_api_writes_only_what_the_retention_delete_needs() {
        let api = grants_to(API_ROLE);
        let writes: Vec<&String> = api.iter().filter(|g| !g.contains("SELECT")).collect();
        assert_eq!(
            writes,
            [
                "GRANT ALTER DELETE, ALTER DROP PARTITION ON `logbus`.logs TO logbus_api",
                "GRANT ALTER DELETE, ALTER DROP PARTITION ON `logbus`.logs_minute TO logbus_api",
                "GRANT INSERT ON `logbus`.logs_minute TO logbus_api",
                "GRANT INSERT ON `logbus`.retention_lock TO logbus_api",
            ]
        );
        for table in ["users", "tokens", "users_by_access_token", "tokens_by_key"] {
            assert!(
                api.contains(&format!("GRANT SELECT ON `logbus`.{table} TO logbus_api")),
                "authentication reads {table}"
            );
        }
        assert!(
            !api.iter().any(|g| g.contains(".*")),
            "no database-wide grant"
        );
    }

    #[test]
    fn the_worker_migrates_and_writes_its_database_only() {
        assert_eq!(
            grants_to(INGEST_ROLE),
            [
                "GRANT CREATE DATABASE ON `logbus`.* TO logbus_ingest",
                "GRANT SELECT, INSERT, CREATE TABLE, CREATE VIEW, ALTER TABLE, ALTER VIEW \
                 ON `logbus`.* TO logbus_ingest",
            ]
        );
    }

    #[test]
    fn members_get_their_role_as_default_and_names_are_checked() {
        let sql = generated();
        assert_eq!(
            &sql[sql.len() - 6..],
            [
                "CREATE USER IF NOT EXISTS `ingest_user`",
                r"ALTER USER `ingest_user` IDENTIFIED WITH sha256_password BY 'pa\'ss\\word'",
                "GRANT logbus_ingest TO `ingest_user`",
                "SET DEFAULT ROLE logbus_ingest TO `ingest_user`",
                "GRANT logbus_reader TO `analyst`",
                "SET DEFAULT ROLE logbus_reader TO `analyst`",
            ]
        );
        assert!(statements("log`bus", &ReaderLimits::default(), &[]).is_err());
        let injected = Member {
            role: API_ROLE,
            user: "x` TO admin; --".into(),
            password: None,
        };
        assert!(statements("logbus", &ReaderLimits::default(), &[injected]).is_err());
    }

    #[test]
    fn passwords_are_never_shown() {
        let member = Member {
            role: API_ROLE,
            user: "api".into(),
            password: Some(Secret::new("s3cret")),
        };
        let sql = statements("logbus", &ReaderLimits::default(), &[member]).expect("valid");
        let shown: String = sql.iter().map(|s| format!("{s} {s:?}\n")).collect();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("IDENTIFIED WITH sha256_password BY '***'"));
        assert!(sql.iter().any(|s| s.sql().contains("BY 's3cret'")));
    }
}
