use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),

    #[error(
        "invalid database name {0:?}: use 1-64 ASCII letters, digits or '_', not starting with a digit"
    )]
    InvalidDatabaseName(String),

    #[error(
        "invalid ClickHouse user name {0:?}: use 1-64 ASCII letters, digits or '_', not starting with a digit"
    )]
    InvalidUserName(String),

    #[error(
        "migration {version} ({name}) was started but never finished; its statements are idempotent, \
         so re-run with --resume-half-applied once the cause is fixed"
    )]
    HalfApplied { version: u32, name: String },

    #[error(
        "migration {version} ({name}) was applied with checksum {applied} but the code has {expected}; \
         migrations must never be edited once released: add a new one"
    )]
    ChecksumMismatch {
        version: u32,
        name: String,
        applied: String,
        expected: String,
    },

    #[error("the database has migration {0}, newer than this build knows; upgrade logbus")]
    UnknownMigration(u32),

    #[error(
        "invalid cluster name {0:?}: use 1-64 ASCII letters, digits or '_', not starting with a digit"
    )]
    InvalidClusterName(String),

    #[error("no cluster variant of the statement starting {statement:?}: {reason}")]
    ClusterVariant {
        statement: String,
        reason: &'static str,
    },

    #[error(
        "database {database} was migrated {} (schema_migrations is {engine}) but this run asked for {}",
        if engine.starts_with("Replicated") { "for a cluster" } else { "for one server" },
        match cluster { Some(c) => format!("cluster {c}"), None => "one server (no --clickhouse-cluster)".to_owned() }
    )]
    TopologyMismatch {
        database: String,
        engine: String,
        cluster: Option<String>,
    },
}
