//! The bridge's configuration: flags with their `LOGBUS_BRIDGE_*` environment variables (the
//! Kafka ones shared with the other binaries), and [`BridgeConfig::new`], an explicit base for
//! code that builds a configuration itself (tests, the bench). Each default is a constant
//! below, read by the clap attribute and by `new` alike.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use logbus_runtime::{KafkaArgs, Secret};

use crate::Error;
use crate::dsn::{self, DEFAULT_SQLITE_PATH, SourceOptions};

pub const DEFAULT_NAMESPACE: &str = "new-api";
pub const DEFAULT_CHECKPOINT: &str = "logbus-bridge.checkpoint.json";
pub const DEFAULT_BATCH_SIZE: usize = 5_000;
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 1_000;
pub const DEFAULT_IDENTITY_POLL_INTERVAL_MS: u64 = 5_000;
pub const DEFAULT_LATE_ROW_WINDOW_SECS: u64 = 300;
pub const DEFAULT_PROGRESS_INTERVAL_SECS: u64 = 5;

/// `logbus-bridge backfill|run`: new-api's SQL `logs`, `users` and `tokens` into logbus's
/// Kafka topics.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "logbus-bridge",
    version,
    about = "Publishes an unmodified new-api's logs, users and tokens to logbus's Kafka topics"
)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Mode {
    /// Publish users, tokens and every log row up to now, then exit.
    Backfill(BridgeConfig),
    /// Backfill, then follow: new log rows every poll interval, changed users and tokens
    /// every identity poll interval, until SIGTERM.
    Run(BridgeConfig),
}

impl Mode {
    pub fn follow(&self) -> bool {
        matches!(self, Mode::Run(_))
    }

    pub fn config(&self) -> &BridgeConfig {
        match self {
            Mode::Backfill(c) | Mode::Run(c) => c,
        }
    }
}

/// Flags of both subcommands. Its `Debug` shows no secret (the DSNs are [`Secret`]s: they hold
/// passwords).
#[derive(Debug, Clone, clap::Args)]
pub struct BridgeConfig {
    /// new-api's `SQL_DSN`, verbatim: `postgres://…`, a MySQL `user:pass@tcp(host:3306)/db`,
    /// `local` or empty (SQLite at --sqlite-path), or a SQLite file path. Users and tokens
    /// are read here, and logs too unless --log-sql-dsn is set.
    #[arg(long, env = "LOGBUS_BRIDGE_SQL_DSN", hide_env_values = true)]
    pub sql_dsn: Option<Secret>,
    /// new-api's `LOG_SQL_DSN`, when its logs live in a database of their own.
    #[arg(long, env = "LOGBUS_BRIDGE_LOG_SQL_DSN", hide_env_values = true)]
    pub log_sql_dsn: Option<Secret>,
    /// new-api's `SQLITE_PATH`: the SQLite file when a DSN is empty or `local`.
    #[arg(long, env = "LOGBUS_BRIDGE_SQLITE_PATH", default_value = DEFAULT_SQLITE_PATH)]
    pub sqlite_path: String,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Namespace of the event ids (a UUID, or a name hashed into one): one per new-api
    /// installation; keep it for the life of the installation.
    #[arg(long, env = "LOGBUS_BRIDGE_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// The checkpoint file (keep it on a persistent volume).
    #[arg(long, env = "LOGBUS_BRIDGE_CHECKPOINT", default_value = DEFAULT_CHECKPOINT)]
    pub checkpoint: PathBuf,
    /// Log rows read per query.
    #[arg(long, env = "LOGBUS_BRIDGE_BATCH_SIZE", default_value_t = DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    /// How often `run` looks for new log rows once caught up.
    #[arg(long, env = "LOGBUS_BRIDGE_POLL_INTERVAL_MS", default_value_t = DEFAULT_POLL_INTERVAL_MS)]
    pub poll_interval_ms: u64,
    /// How often `run` re-reads users and tokens (a ban reaches logbus within this, plus
    /// ingest's flush and the API's identity cache TTL).
    #[arg(
        long,
        env = "LOGBUS_BRIDGE_IDENTITY_POLL_INTERVAL_MS",
        default_value_t = DEFAULT_IDENTITY_POLL_INTERVAL_MS
    )]
    pub identity_poll_interval_ms: u64,
    /// How long a missing id below the newest is re-read (a transaction that committed after a
    /// higher id was visible) before it is given up as deleted or rolled back.
    #[arg(
        long,
        env = "LOGBUS_BRIDGE_LATE_ROW_WINDOW_SECS",
        default_value_t = DEFAULT_LATE_ROW_WINDOW_SECS
    )]
    pub late_row_window_secs: u64,
    /// Most log rows read per second (0: no limit), to spare a busy source database.
    #[arg(long, env = "LOGBUS_BRIDGE_MAX_ROWS_PER_SEC", default_value_t = 0)]
    pub max_rows_per_sec: u64,
    /// Seconds between progress log lines when stderr is not a terminal.
    #[arg(
        long,
        env = "LOGBUS_BRIDGE_PROGRESS_INTERVAL_SECS",
        default_value_t = DEFAULT_PROGRESS_INTERVAL_SECS
    )]
    pub progress_interval_secs: u64,
}

impl BridgeConfig {
    /// The defaults, with `sql_dsn` as the source and `kafka` as the destination.
    pub fn new(sql_dsn: impl Into<String>, kafka: KafkaArgs, checkpoint: PathBuf) -> Self {
        Self {
            sql_dsn: Some(Secret::new(sql_dsn.into())),
            log_sql_dsn: None,
            sqlite_path: DEFAULT_SQLITE_PATH.to_owned(),
            kafka,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            checkpoint,
            batch_size: DEFAULT_BATCH_SIZE,
            poll_interval_ms: DEFAULT_POLL_INTERVAL_MS,
            identity_poll_interval_ms: DEFAULT_IDENTITY_POLL_INTERVAL_MS,
            late_row_window_secs: DEFAULT_LATE_ROW_WINDOW_SECS,
            max_rows_per_sec: 0,
            progress_interval_secs: DEFAULT_PROGRESS_INTERVAL_SECS,
        }
    }

    pub fn validate(&self) -> Result<(), Error> {
        let positive = [
            ("batch-size", self.batch_size as u64),
            ("poll-interval-ms", self.poll_interval_ms),
            ("identity-poll-interval-ms", self.identity_poll_interval_ms),
            ("progress-interval-secs", self.progress_interval_secs),
        ];
        for (flag, value) in positive {
            if value == 0 {
                return Err(Error::Config(format!("--{flag} must be at least 1")));
            }
        }
        if self.namespace.trim().is_empty() {
            return Err(Error::Config("--namespace must not be empty".into()));
        }
        Ok(())
    }

    /// The main database (users, tokens, channels; logs unless `log_sql_dsn`).
    pub fn main_source(&self) -> Result<(SourceOptions, String), Error> {
        self.source(self.sql_dsn.as_ref())
    }

    /// The database holding `logs`: `log_sql_dsn` when set, else the main one.
    pub fn log_source(&self) -> Result<(SourceOptions, String), Error> {
        match self.log_sql_dsn.as_ref().filter(|d| !d.is_empty()) {
            Some(dsn) => self.source(Some(dsn)),
            None => self.main_source(),
        }
    }

    fn source(&self, dsn: Option<&Secret>) -> Result<(SourceOptions, String), Error> {
        let parsed = dsn::parse(dsn.map_or("", Secret::expose), &self.sqlite_path)?;
        let described = parsed.describe();
        Ok((parsed.into_options()?, described))
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub fn identity_poll_interval(&self) -> Duration {
        Duration::from_millis(self.identity_poll_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_secrets_stay_hidden() {
        let cli = Cli::try_parse_from([
            "logbus-bridge",
            "run",
            "--sql-dsn",
            "root:hunter2@tcp(db:3306)/newapi",
            "--log-sql-dsn",
            "postgres://u:pw2@logs/newapi",
            "--batch-size",
            "100",
        ])
        .expect("parses");
        assert!(cli.mode.follow());
        let config = cli.mode.config();
        assert_eq!(config.batch_size, 100);
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("pw2"),
            "{debug}"
        );
        assert_eq!(
            config.main_source().expect("main").1,
            "mysql db:3306/newapi"
        );
        assert_eq!(
            config.log_source().expect("logs").1,
            "postgresql logs/newapi"
        );
        assert!(config.validate().is_ok());
    }

    #[test]
    fn no_dsn_means_new_apis_sqlite_file() {
        let cli = Cli::try_parse_from(["logbus-bridge", "backfill"]).expect("parses");
        let config = cli.mode.config();
        assert!(!cli.mode.follow());
        assert_eq!(config.log_source().expect("logs").1, "sqlite one-api.db");
        let mut zero = config.clone();
        zero.batch_size = 0;
        assert!(zero.validate().is_err());
    }
}
