//! Everything that can stop the bridge. A row the event contract refuses never does: it is
//! published anyway and dead-lettered by ingest. What remains is configuration, the source
//! database, the broker and the checkpoint file; after any of them a restart resumes from the
//! checkpoint.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("source DSN: {0}")]
    Dsn(#[from] crate::dsn::DsnError),
    #[error("source database {source_name}: {error}")]
    Source {
        source_name: String,
        error: sqlx::Error,
    },
    #[error("source database {source_name}: table {table} lacks column(s) {missing}")]
    Schema {
        source_name: String,
        table: &'static str,
        missing: String,
    },
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("the producer dropped a delivery")]
    DeliveryLost,
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint { path: PathBuf, message: String },
    #[error("a blocking task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}
