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

/// The `logs` partition of a unix timestamp: `toYYYYMMDD(created_at)`, a UTC day, as
/// migration 1's `PARTITION BY` computes it (the retention delete drops partitions by it).
pub fn partition_id(timestamp: i64) -> u32 {
    let days = timestamp.div_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year * 10_000 + month * 100 + day) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_ids_are_utc_days() {
        assert_eq!(partition_id(0), 19700101);
        assert_eq!(partition_id(1_700_000_000), 20231114);
        assert_eq!(partition_id(951_782_400), 20000229);
        assert_eq!(partition_id(4_294_967_295), 21060207);
    }
}
