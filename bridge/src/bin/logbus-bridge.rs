// `logbus-bridge backfill|run`: new-api's SQL logs, users and tokens into logbus's Kafka
// topics (docs/adopting.md). Plain comments, not doc comments: the tests crate `include!`s
// this file.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    logbus_runtime::telemetry::init();
    logbus_bridge::main_with(logbus_bridge::Cli::parse()).await
}
