//! The ClickHouse side of logbus: schema and versioned migrations, the row types that ingest
//! writes and query-api reads, and the event contract that turns gateway events into rows.
//!
//! Both services depend on this crate so that a column can only be renamed in one place.

pub mod connection;
pub mod error;
pub mod events;
pub mod identity;
pub mod migrate;
pub mod rows;

pub use connection::ClickHouseArgs;
pub use error::{Error, Result};
pub use migrate::{MIGRATIONS, MigrateOptions, Migration, MigrationReport, migrate};

/// Table names, so that SQL elsewhere never spells them twice.
pub mod tables {
    pub const LOGS: &str = "logs";
    pub const LOGS_MINUTE: &str = "logs_minute";
    pub const LOGS_MINUTE_MV: &str = "logs_minute_mv";
    pub const USERS: &str = "users";
    pub const TOKENS: &str = "tokens";
    pub const SCHEMA_MIGRATIONS: &str = "schema_migrations";
}

/// Rejects database names that would need quoting: the name is spliced into DDL, where
/// ClickHouse offers no bound parameters.
pub fn validate_database_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidDatabaseName(name.to_owned()))
    }
}
