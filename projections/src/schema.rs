//! What SQL elsewhere needs to know about the schema that the migrations create: table names,
//! the minute rollup's SELECT, database-name rules and the partition key of `logs`.

use crate::{Error, Result};

/// Table names, so that SQL elsewhere never spells them twice.
pub mod tables {
    pub const LOGS: &str = "logs";
    pub const LOGS_MINUTE: &str = "logs_minute";
    pub const LOGS_MINUTE_MV: &str = "logs_minute_mv";
    pub const USERS: &str = "users";
    pub const TOKENS: &str = "tokens";
    /// Ingest's batch intents (migration 2), one [`crate::rows::Intent`] per row.
    pub const INGEST_BATCHES: &str = "ingest_batches";
    pub const SCHEMA_MIGRATIONS: &str = "schema_migrations";
    /// The leases of the retention delete (migration 8).
    pub const RETENTION_LOCK: &str = "retention_lock";
    /// Users by access-token hash, ordered by hash (migration 9).
    pub const USERS_BY_ACCESS_TOKEN: &str = "users_by_access_token";
    /// Tokens by key hash, ordered by hash (migration 9).
    pub const TOKENS_BY_KEY: &str = "tokens_by_key";
}

/// The columns of `logs_minute`, in the order [`minute_rollup_select`] produces them.
pub const MINUTE_ROLLUP_COLUMNS: &str = "minute, type, user_id, username, token_id, token_name, \
    model_name, channel_id, `group`, requests, quota, prompt_tokens, completion_tokens";

/// The SELECT of the materialized view `logs_minute_mv` (migration 1), restricted by
/// `where_clause` (empty, or `WHERE …` over `logs`): the retention delete rebuilds a cut
/// minute with it, so the rebuilt rows are the view's rows. The migration itself is frozen
/// SQL; `foundation` tests check this text against the view definition stored by the engine.
pub fn minute_rollup_select(where_clause: &str) -> String {
    format!(
        "SELECT toStartOfMinute(created_at) AS minute, type, user_id, username, token_id, \
           token_name, model_name, channel_id, `group`, count() AS requests, \
           sum(quota) AS quota, sum(prompt_tokens) AS prompt_tokens, \
           sum(completion_tokens) AS completion_tokens \
         FROM {logs} {where_clause} \
         GROUP BY minute, type, user_id, username, token_id, token_name, model_name, \
           channel_id, `group`",
        logs = tables::LOGS
    )
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

    #[test]
    fn database_names_that_need_quoting_are_refused() {
        assert!(validate_database_name("logbus_test_1").is_ok());
        for bad in ["", "1db", "a-b", "a`b", &"x".repeat(65)] {
            assert!(validate_database_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_rollup_select_takes_a_where_clause() {
        let sql = minute_rollup_select("WHERE created_at >= 5");
        assert!(
            sql.contains("FROM logs WHERE created_at >= 5 GROUP BY minute"),
            "{sql}"
        );
    }
}
