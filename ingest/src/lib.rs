//! logbus ingest: consumes gateway usage-log events from Kafka and writes them to ClickHouse
//! with an exactly-once effect (see `docs/ingest.md` for the design and the argument).
//!
//! The library entry point is [`run`]; the `logbus-ingest` binary is [`cli_main`], and the
//! `logbus-gen` load generator lives in [`r#gen`](crate::r#gen).

pub mod r#gen;
mod http;
mod store;
mod worker;
mod writer;

use std::future::Future;
use std::net::SocketAddr;

use clap::Parser;

pub use store::Intent;

/// The Kafka brokers and source topics, the same flags for `logbus-ingest` (which consumes
/// them) and `logbus-gen` (which publishes to them).
#[derive(Clone, Debug, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "LOGBUS_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic of usage-log events.
    #[arg(long, env = "LOGBUS_LOGS_TOPIC", default_value = "gateway.logs")]
    pub logs_topic: String,
    /// Topic of user/token identity events.
    #[arg(
        long,
        env = "LOGBUS_IDENTITY_TOPIC",
        default_value = "gateway.identity"
    )]
    pub identity_topic: String,
}

/// Configuration of the ingest worker. Every flag can also be set through its `LOGBUS_*`
/// environment variable.
#[derive(Clone, Parser)]
#[command(
    name = "logbus-ingest",
    version,
    about = "Kafka to ClickHouse ingest worker"
)]
pub struct IngestConfig {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Consumer group id (also the key of the worker's progress records in ClickHouse).
    #[arg(long, env = "LOGBUS_GROUP_ID", default_value = "logbus-ingest")]
    pub group_id: String,
    /// Dead-letter topic for events that cannot be ingested.
    #[arg(long, env = "LOGBUS_DLQ_TOPIC", default_value = "gateway.logs.dlq")]
    pub dlq_topic: String,
    #[command(flatten)]
    pub clickhouse: logbus_runtime::ClickHouseArgs,
    /// Flush a partition's batch when it holds this many rows.
    #[arg(long, env = "LOGBUS_BATCH_MAX_ROWS", default_value_t = 50_000)]
    pub batch_max_rows: usize,
    /// Flush a partition's batch when its events hold this many bytes.
    #[arg(long, env = "LOGBUS_BATCH_MAX_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub batch_max_bytes: usize,
    /// Flush a partition's batch this long after its first event (freshness bound).
    #[arg(long, env = "LOGBUS_FLUSH_INTERVAL_MS", default_value_t = 200)]
    pub flush_interval_ms: u64,
    /// Batches being written to ClickHouse at once (at most one per partition). While they
    /// are written the worker keeps reading; when all slots are busy it waits, which bounds
    /// memory to about (max-inflight-batches + partitions) x batch-max-bytes.
    #[arg(long, env = "LOGBUS_MAX_INFLIGHT_BATCHES", default_value_t = 2)]
    pub max_inflight_batches: usize,
    /// Events larger than this go to the dead-letter topic.
    #[arg(long, env = "LOGBUS_MAX_EVENT_BYTES", default_value_t = 256 * 1024)]
    pub max_event_bytes: usize,
    /// Re-published events (same event_id) are dropped when they arrive within this window
    /// of the first copy's ingestion.
    #[arg(long, env = "LOGBUS_DEDUP_WINDOW_SECS", default_value_t = 86_400)]
    pub dedup_window_secs: u64,
    /// Address of the /healthz, /readyz and /metrics endpoint (port 0: any free port).
    #[arg(long, env = "LOGBUS_HTTP_ADDR", default_value = "127.0.0.1:9464")]
    pub http_addr: SocketAddr,
    /// Kafka consumer group session timeout.
    #[arg(long, env = "LOGBUS_SESSION_TIMEOUT_MS", default_value_t = 10_000)]
    pub session_timeout_ms: u64,
    /// Kafka `max.poll.interval.ms`: a worker that has not polled for this long (e.g. stuck
    /// retrying a dead ClickHouse) leaves the group so that its partitions can move.
    #[arg(long, env = "LOGBUS_MAX_POLL_INTERVAL_MS", default_value_t = 300_000)]
    pub max_poll_interval_ms: u64,
    /// How long a graceful shutdown may keep retrying its final flush before giving up
    /// (uncommitted batches are then replayed by the next owner, never lost).
    #[arg(long, env = "LOGBUS_SHUTDOWN_TIMEOUT_MS", default_value_t = 20_000)]
    pub shutdown_timeout_ms: u64,
    /// Testing only: `after-insert:N` aborts the process right after the N-th successful
    /// ClickHouse insert of log rows, before its offsets are committed.
    #[arg(long, env = "LOGBUS_FAIL_POINT", hide = true)]
    pub fail_point: Option<String>,
}

impl std::fmt::Debug for IngestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestConfig")
            .field("kafka", &self.kafka)
            .field("group_id", &self.group_id)
            .field("dlq_topic", &self.dlq_topic)
            .field("clickhouse", &self.clickhouse)
            .field("batch_max_rows", &self.batch_max_rows)
            .field("batch_max_bytes", &self.batch_max_bytes)
            .field("flush_interval_ms", &self.flush_interval_ms)
            .field("max_inflight_batches", &self.max_inflight_batches)
            .field("max_event_bytes", &self.max_event_bytes)
            .field("dedup_window_secs", &self.dedup_window_secs)
            .field("http_addr", &self.http_addr)
            .field("session_timeout_ms", &self.session_timeout_ms)
            .field("max_poll_interval_ms", &self.max_poll_interval_ms)
            .field("shutdown_timeout_ms", &self.shutdown_timeout_ms)
            .field("fail_point", &self.fail_point)
            .finish()
    }
}

impl IngestConfig {
    /// The configuration as if no flag were given: defaults, overridden by any `LOGBUS_*`
    /// environment variables that are set.
    pub fn defaults() -> Self {
        Self::parse_from(["logbus-ingest"])
    }
}

/// Everything that can stop the ingest worker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("schema migration: {0}")]
    Migrate(#[from] logbus_projections::Error),
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("http endpoint {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("shutdown: gave up flushing after {0:?}; uncommitted batches will be replayed")]
    ShutdownTimeout(std::time::Duration),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("batch write task failed: {0}")]
    WriteTask(#[from] tokio::task::JoinError),
}

/// Migrates the schema, then consumes until `shutdown` resolves; then stops fetching,
/// flushes, commits and returns.
pub async fn run(
    config: IngestConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    worker::run(config, shutdown).await
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Installs a `tracing` subscriber reading `RUST_LOG` (default `info`); JSON lines when
/// `LOGBUS_LOG_JSON=1`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,rdkafka=warn".into());
    let json = std::env::var("LOGBUS_LOG_JSON").is_ok_and(|v| v == "1");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The `logbus-ingest` command line: parses flags, runs until SIGTERM/SIGINT.
/// Returns the process exit code.
pub fn cli_main() -> std::process::ExitCode {
    init_tracing();
    let config = IngestConfig::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config, shutdown_signal())) {
        Ok(()) => {
            tracing::info!("stopped cleanly");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "ingest stopped with an error");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let future = super::run(super::IngestConfig::defaults(), async {});
        assert_send(&future);
    }
}
