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
}
