//! What every logbus process needs at run time and nothing else: the connection flags shared
//! by the binaries, a [`Secret`] type whose `Debug` never shows its value, tracing set-up, the
//! process-wide Prometheus recorder and the shutdown signal.
//!
//! This crate knows no logbus schema or contract (that is `logbus-projections`), so every
//! other crate may depend on it and it depends on none of them.

mod clickhouse_args;
mod kafka_args;
pub mod metrics;
mod secret;
pub mod shutdown;
pub mod telemetry;

pub use clickhouse_args::ClickHouseArgs;
pub use kafka_args::KafkaArgs;
pub use secret::Secret;

/// The exit code of a service whose `run` returned `result`, after logging how it ended.
pub fn exit_code<E: std::fmt::Display>(
    service: &str,
    result: Result<(), E>,
) -> std::process::ExitCode {
    match result {
        Ok(()) => {
            tracing::info!(service, "stopped cleanly");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(service, %error, "stopped with an error");
            std::process::ExitCode::FAILURE
        }
    }
}
