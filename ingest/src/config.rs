//! The worker's configuration: flags with their `LOGBUS_*` environment variables for the
//! binary, and [`IngestConfig::new`], an explicit base for code that builds a configuration
//! itself (tests, the bench). Each default has one home, a constant below, read by the clap
//! attribute and by `new` alike.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use clap::Parser;
use logbus_projections::Cluster;
use logbus_projections::ttl::{self, Retention};
use logbus_projections::window::{self, CreatedAtWindow};
use logbus_runtime::{ClickHouseArgs, KafkaArgs};

use crate::Error;

pub const DEFAULT_GROUP_ID: &str = "logbus-ingest";
pub const DEFAULT_DLQ_TOPIC: &str = "gateway.logs.dlq";
pub const DEFAULT_BATCH_MAX_ROWS: usize = 50_000;
pub const DEFAULT_BATCH_MAX_BYTES: usize = 8 * 1024 * 1024;
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 200;
pub const DEFAULT_MAX_INFLIGHT_BATCHES: usize = 2;
pub const DEFAULT_MAX_EVENT_BYTES: usize = 256 * 1024;
/// A 1 MiB Kafka message (the broker's default limit) holds at most about 22,000 of the
/// smallest valid events; no producer of ours batches more than a few hundred per message.
pub const DEFAULT_MAX_EVENTS_PER_MESSAGE: usize = 10_000;
pub const DEFAULT_CREATED_AT_MAX_FUTURE_SECS: u32 = window::DEFAULT_MAX_FUTURE_SECS;
pub const DEFAULT_CREATED_AT_MAX_AGE_DAYS: u32 = window::DEFAULT_MAX_AGE_SECS / 86_400;
/// The largest age in days whose seconds fit the window's `u32`.
const MAX_AGE_DAYS_LIMIT: u32 = u32::MAX / 86_400;
pub const DEFAULT_DEDUP_WINDOW_SECS: u64 = 86_400;
pub const DEFAULT_HTTP_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9464));
pub const DEFAULT_SESSION_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_MAX_POLL_INTERVAL_MS: u64 = 300_000;
pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: u64 = 20_000;
pub const DEFAULT_LAG_INTERVAL_MS: u64 = 1_000;
pub const DEFAULT_KAFKA_UNREACHABLE_AFTER_MS: u64 = 5_000;

/// Configuration of the ingest worker. Every flag can also be set through its `LOGBUS_*`
/// environment variable. Its `Debug` shows no secret (the password is a `Secret`).
#[derive(Clone, Debug, Parser)]
#[command(
    name = "logbus-ingest",
    version,
    about = "Kafka to ClickHouse ingest worker"
)]
pub struct IngestConfig {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Consumer group id (also the key of the worker's progress records in ClickHouse).
    #[arg(long, env = "LOGBUS_GROUP_ID", default_value = DEFAULT_GROUP_ID)]
    pub group_id: String,
    /// Dead-letter topic for events that cannot be ingested.
    #[arg(long, env = "LOGBUS_DLQ_TOPIC", default_value = DEFAULT_DLQ_TOPIC)]
    pub dlq_topic: String,
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
    /// Migrate (and write) for this ClickHouse cluster, its name in the servers'
    /// remote_servers: ON CLUSTER DDL, Replicated*MergeTree tables, logs and logs_minute
    /// sharded by user_id behind Distributed tables (docs/scaling.md). Unset: one server.
    #[arg(long, env = "LOGBUS_CLICKHOUSE_CLUSTER", global = true)]
    pub clickhouse_cluster: Option<String>,
    /// Flush a partition's batch when it holds this many rows.
    #[arg(long, env = "LOGBUS_BATCH_MAX_ROWS", default_value_t = DEFAULT_BATCH_MAX_ROWS)]
    pub batch_max_rows: usize,
    /// Flush a partition's batch when its events hold this many bytes.
    #[arg(long, env = "LOGBUS_BATCH_MAX_BYTES", default_value_t = DEFAULT_BATCH_MAX_BYTES)]
    pub batch_max_bytes: usize,
    /// Flush a partition's batch this long after its first event (freshness bound).
    #[arg(long, env = "LOGBUS_FLUSH_INTERVAL_MS", default_value_t = DEFAULT_FLUSH_INTERVAL_MS)]
    pub flush_interval_ms: u64,
    /// Batches being written to ClickHouse at once (at most one per partition). While they
    /// are written the worker keeps reading; when all slots are busy it waits, which bounds
    /// memory to about (max-inflight-batches + partitions) x batch-max-bytes.
    #[arg(
        long,
        env = "LOGBUS_MAX_INFLIGHT_BATCHES",
        default_value_t = DEFAULT_MAX_INFLIGHT_BATCHES
    )]
    pub max_inflight_batches: usize,
    /// Events larger than this go to the dead-letter topic.
    #[arg(long, env = "LOGBUS_MAX_EVENT_BYTES", default_value_t = DEFAULT_MAX_EVENT_BYTES)]
    pub max_event_bytes: usize,
    /// A log message (a JSON array) of more events than this is dead-lettered once, whole,
    /// instead of one dead letter per element.
    #[arg(
        long,
        env = "LOGBUS_MAX_EVENTS_PER_MESSAGE",
        default_value_t = DEFAULT_MAX_EVENTS_PER_MESSAGE
    )]
    pub max_events_per_message: usize,
    /// Events whose created_at is more than this many seconds after their message's Kafka
    /// timestamp are dead-lettered (reason class out_of_window).
    #[arg(
        long,
        env = "LOGBUS_CREATED_AT_MAX_FUTURE_SECS",
        default_value_t = DEFAULT_CREATED_AT_MAX_FUTURE_SECS
    )]
    pub created_at_max_future_secs: u32,
    /// Events whose created_at is more than this many days before their message's Kafka
    /// timestamp are dead-lettered (0: no lower bound). Generous, for backfills.
    #[arg(
        long,
        env = "LOGBUS_CREATED_AT_MAX_AGE_DAYS",
        default_value_t = DEFAULT_CREATED_AT_MAX_AGE_DAYS
    )]
    pub created_at_max_age_days: u32,
    /// Re-published events (same event_id) are dropped when they arrive within this window
    /// of the first copy's ingestion.
    #[arg(long, env = "LOGBUS_DEDUP_WINDOW_SECS", default_value_t = DEFAULT_DEDUP_WINDOW_SECS)]
    pub dedup_window_secs: u64,
    /// Days `logs` keeps its rows, applied at start as a TTL that drops whole days (0: for
    /// ever). Backfilling older history needs a longer retention (or 0).
    #[arg(long, env = "LOGBUS_RETENTION_RAW_DAYS", default_value_t = ttl::DEFAULT_RAW_DAYS)]
    pub retention_raw_days: u32,
    /// Days the minute rollup `logs_minute` keeps its rows, applied likewise (0: for ever).
    #[arg(long, env = "LOGBUS_RETENTION_ROLLUP_DAYS", default_value_t = ttl::DEFAULT_ROLLUP_DAYS)]
    pub retention_rollup_days: u32,
    /// Address of the /healthz, /readyz and /metrics endpoint (port 0: any free port).
    #[arg(long, env = "LOGBUS_HTTP_ADDR", default_value_t = DEFAULT_HTTP_ADDR)]
    pub http_addr: SocketAddr,
    /// Kafka consumer group session timeout.
    #[arg(long, env = "LOGBUS_SESSION_TIMEOUT_MS", default_value_t = DEFAULT_SESSION_TIMEOUT_MS)]
    pub session_timeout_ms: u64,
    /// Kafka `max.poll.interval.ms`: a worker that has not polled for this long (e.g. stuck
    /// retrying a dead ClickHouse) leaves the group so that its partitions can move.
    #[arg(
        long,
        env = "LOGBUS_MAX_POLL_INTERVAL_MS",
        default_value_t = DEFAULT_MAX_POLL_INTERVAL_MS
    )]
    pub max_poll_interval_ms: u64,
    /// How long a graceful shutdown may keep retrying its final flush before giving up
    /// (uncommitted batches are then replayed by the next owner, never lost).
    #[arg(
        long,
        env = "LOGBUS_SHUTDOWN_TIMEOUT_MS",
        default_value_t = DEFAULT_SHUTDOWN_TIMEOUT_MS
    )]
    pub shutdown_timeout_ms: u64,
    /// How often the consumer lag is measured (high watermarks and the group's committed
    /// offsets, read from the broker); each measurement is also the Kafka reachability probe.
    #[arg(long, env = "LOGBUS_LAG_INTERVAL_MS", default_value_t = DEFAULT_LAG_INTERVAL_MS)]
    pub lag_interval_ms: u64,
    /// /readyz answers 503 (`kafka unreachable`) when no probe of the broker succeeded for
    /// this long.
    #[arg(
        long,
        env = "LOGBUS_KAFKA_UNREACHABLE_AFTER_MS",
        default_value_t = DEFAULT_KAFKA_UNREACHABLE_AFTER_MS
    )]
    pub kafka_unreachable_after_ms: u64,
    /// Testing only: `after-insert:N` aborts the process right after the N-th successful
    /// ClickHouse insert of log rows, before its offsets are committed.
    #[arg(long, env = "LOGBUS_FAIL_POINT", hide = true)]
    pub fail_point: Option<String>,
}

impl IngestConfig {
    /// A worker of `kafka` and `clickhouse` with every other setting at its documented
    /// default. Reads no environment variable.
    /// The retention of `logs` and `logs_minute` ([`ttl`]).
    pub fn retention(&self) -> Retention {
        Retention {
            raw_days: self.retention_raw_days,
            rollup_days: self.retention_rollup_days,
        }
    }

    pub fn new(kafka: KafkaArgs, clickhouse: ClickHouseArgs) -> Self {
        Self {
            kafka,
            group_id: DEFAULT_GROUP_ID.to_owned(),
            dlq_topic: DEFAULT_DLQ_TOPIC.to_owned(),
            clickhouse,
            clickhouse_cluster: None,
            batch_max_rows: DEFAULT_BATCH_MAX_ROWS,
            batch_max_bytes: DEFAULT_BATCH_MAX_BYTES,
            flush_interval_ms: DEFAULT_FLUSH_INTERVAL_MS,
            max_inflight_batches: DEFAULT_MAX_INFLIGHT_BATCHES,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_events_per_message: DEFAULT_MAX_EVENTS_PER_MESSAGE,
            created_at_max_future_secs: DEFAULT_CREATED_AT_MAX_FUTURE_SECS,
            created_at_max_age_days: DEFAULT_CREATED_AT_MAX_AGE_DAYS,
            dedup_window_secs: DEFAULT_DEDUP_WINDOW_SECS,
            retention_raw_days: ttl::DEFAULT_RAW_DAYS,
            retention_rollup_days: ttl::DEFAULT_ROLLUP_DAYS,
            http_addr: DEFAULT_HTTP_ADDR,
            session_timeout_ms: DEFAULT_SESSION_TIMEOUT_MS,
            max_poll_interval_ms: DEFAULT_MAX_POLL_INTERVAL_MS,
            shutdown_timeout_ms: DEFAULT_SHUTDOWN_TIMEOUT_MS,
            lag_interval_ms: DEFAULT_LAG_INTERVAL_MS,
            kafka_unreachable_after_ms: DEFAULT_KAFKA_UNREACHABLE_AFTER_MS,
            fail_point: None,
        }
    }

    /// Refuses settings the worker cannot run with.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.batch_max_rows == 0 || self.batch_max_bytes == 0 || self.max_inflight_batches == 0 {
            return Err(Error::Config(
                "batch-max-rows, batch-max-bytes and max-inflight-batches must be positive".into(),
            ));
        }
        if self.kafka.logs_topic == self.dlq_topic || self.kafka.identity_topic == self.dlq_topic {
            return Err(Error::Config(
                "the dead-letter topic must differ from the source topics".into(),
            ));
        }
        if self.kafka.logs_topic == self.kafka.identity_topic {
            return Err(Error::Config(
                "the logs and identity topics must differ".into(),
            ));
        }
        if self.lag_interval_ms == 0 || self.kafka_unreachable_after_ms < self.lag_interval_ms {
            return Err(Error::Config(
                "lag-interval-ms must be positive and at most kafka-unreachable-after-ms".into(),
            ));
        }
        if self.max_events_per_message == 0 {
            return Err(Error::Config(
                "max-events-per-message must be positive".into(),
            ));
        }
        if self.created_at_max_age_days > MAX_AGE_DAYS_LIMIT {
            return Err(Error::Config(format!(
                "created-at-max-age-days must be at most {MAX_AGE_DAYS_LIMIT} (0: no bound)"
            )));
        }
        logbus_projections::validate_database_name(&self.clickhouse.database)?;
        self.cluster()?;
        self.fail_after()?;
        Ok(())
    }

    /// The ClickHouse cluster migrated and written to, if one is set.
    pub fn cluster(&self) -> Result<Option<Cluster>, Error> {
        Ok(self
            .clickhouse_cluster
            .as_deref()
            .map(Cluster::new)
            .transpose()?)
    }

    /// The accepted `created_at` window, relative to a message's time.
    pub(crate) fn created_at_window(&self) -> CreatedAtWindow {
        CreatedAtWindow {
            max_future_secs: self.created_at_max_future_secs,
            max_age_secs: (self.created_at_max_age_days > 0)
                .then(|| self.created_at_max_age_days.saturating_mul(86_400)),
        }
    }

    /// The fail point's insert count (`after-insert:N`), if one is set.
    pub(crate) fn fail_after(&self) -> Result<Option<u64>, Error> {
        self.fail_point.as_deref().map(parse_fail_point).transpose()
    }
}

fn parse_fail_point(point: &str) -> Result<u64, Error> {
    point
        .strip_prefix("after-insert:")
        .and_then(|n| n.parse::<u64>().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| Error::Config(format!("unknown fail point {point:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> IngestConfig {
        IngestConfig::new(
            KafkaArgs {
                brokers: "127.0.0.1:9092".into(),
                logs_topic: "gateway.logs".into(),
                identity_topic: "gateway.identity".into(),
            },
            ClickHouseArgs::new("http://127.0.0.1:8123", "logbus"),
        )
    }

    #[test]
    fn fail_points_parse() {
        assert_eq!(parse_fail_point("after-insert:3").ok(), Some(3));
        assert!(parse_fail_point("after-insert:0").is_err());
        assert!(parse_fail_point("somewhere").is_err());
    }

    #[test]
    fn config_validation() {
        let mut config = config();
        assert!(config.validate().is_ok());
        config.dlq_topic = config.kafka.logs_topic.clone();
        assert!(config.validate().is_err());
        let mut config = self::config();
        config.batch_max_rows = 0;
        assert!(config.validate().is_err());
        let mut config = self::config();
        config.max_inflight_batches = 0;
        assert!(config.validate().is_err());
        let mut config = self::config();
        config.fail_point = Some("nowhere".into());
        assert!(config.validate().is_err());
        let mut config = self::config();
        config.lag_interval_ms = 0;
        assert!(config.validate().is_err());
        let mut config = self::config();
        config.kafka_unreachable_after_ms = config.lag_interval_ms - 1;
        assert!(config.validate().is_err());
        let mut config = self::config();
        config.max_events_per_message = 0;
        assert!(config.validate().is_err());
        let mut config = self::config();
        config.created_at_max_age_days = MAX_AGE_DAYS_LIMIT + 1;
        assert!(config.validate().is_err());
        config.created_at_max_age_days = 0;
        assert!(config.validate().is_ok());
        config.clickhouse_cluster = Some("a'b".into());
        assert!(config.validate().is_err());
        config.clickhouse_cluster = Some("logs_cluster".into());
        assert!(config.validate().is_ok());
        assert_eq!(config.created_at_window().max_age_secs, None);
    }

    #[test]
    fn new_and_the_flags_share_their_defaults() {
        let parsed = IngestConfig::try_parse_from(["logbus-ingest"]).expect("parses");
        let built = IngestConfig::new(parsed.kafka.clone(), parsed.clickhouse.clone());
        // Equal unless a LOGBUS_* variable is set in the test's environment.
        if std::env::vars().all(|(name, _)| !name.starts_with("LOGBUS_")) {
            assert_eq!(format!("{parsed:?}"), format!("{built:?}"));
        }
        assert_eq!(built.http_addr.to_string(), "127.0.0.1:9464");
        assert_eq!(built.batch_max_bytes, 8_388_608);
        assert_eq!(built.created_at_window(), CreatedAtWindow::default());
    }

    #[test]
    fn debug_masks_the_password() {
        let mut config = config();
        config.clickhouse.password = Some("hunter2".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
