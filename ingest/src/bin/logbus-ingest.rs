// `logbus-ingest`: flags (or `LOGBUS_*` variables) in, the worker run until SIGTERM/SIGINT.

use clap::Parser;
use logbus_ingest::{IngestConfig, Worker};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    logbus_runtime::telemetry::init();
    let config = IngestConfig::parse();
    let result = match Worker::bind(config).await {
        Ok(worker) => worker.run(logbus_runtime::shutdown::signal()).await,
        Err(error) => Err(error),
    };
    logbus_runtime::exit_code("logbus-ingest", result)
}
