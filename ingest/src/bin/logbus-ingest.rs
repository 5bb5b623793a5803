// `logbus-ingest`: flags (or `LOGBUS_*` variables) in, the worker run until SIGTERM/SIGINT;
// `logbus-ingest grants` prints or applies the ClickHouse roles of least privilege;
// `logbus-ingest migrations --print`: the schema's SQL out, nothing applied.

use clap::Parser;
use logbus_ingest::{Cli, Command, Worker};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    logbus_runtime::telemetry::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Grants(args)) => logbus_ingest::grants::run(&args).await,
        Some(Command::Migrations { .. }) => match logbus_ingest::migrations_script(&cli.config) {
            Ok(script) => {
                print!("{script}");
                return std::process::ExitCode::SUCCESS;
            }
            Err(error) => Err(error),
        },
        None => match Worker::bind(cli.config).await {
            Ok(worker) => worker.run(logbus_runtime::shutdown::signal()).await,
            Err(error) => Err(error),
        },
    };
    logbus_runtime::exit_code("logbus-ingest", result)
}
