//! Everything that can stop the ingest worker. A batch's bad data never does: it is
//! dead-lettered. What remains is configuration, the schema, the broker, a ClickHouse
//! rejection of bookkeeping (not of a batch's rows), and giving up at shutdown.

use std::net::SocketAddr;

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
    #[error("batch write task failed: {0}")]
    WriteTask(#[from] tokio::task::JoinError),
}
