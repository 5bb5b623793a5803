// The logbus query API server: `logbus-query-api --help` lists the options.

use std::process::ExitCode;

use clap::Parser;
use logbus_query_api::{Config, Server};

#[tokio::main]
async fn main() -> ExitCode {
    logbus_runtime::telemetry::init();
    let config = Config::parse();
    let result = match Server::bind(&config).await {
        Ok(server) => server.serve(logbus_runtime::shutdown::signal()).await,
        Err(error) => Err(error),
    };
    logbus_runtime::exit_code("logbus-query-api", result)
}
