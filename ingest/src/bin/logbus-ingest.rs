// `logbus-ingest`: flags (or `LOGBUS_*` variables) in, the worker run until SIGTERM/SIGINT;
// `logbus-ingest grants` prints or applies the ClickHouse roles of least privilege.

use clap::{Parser, Subcommand};
use logbus_ingest::grants::GrantsArgs;
use logbus_ingest::{IngestConfig, Worker};

#[derive(Parser)]
#[command(
    name = "logbus-ingest",
    version,
    about = "Kafka to ClickHouse ingest worker",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: IngestConfig,
}

#[derive(Subcommand)]
enum Command {
    /// Print (or, with --apply, run) the SQL that creates the roles logbus_ingest,
    /// logbus_api and logbus_reader and the reader's settings profile (docs/operations.md).
    Grants(GrantsArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    logbus_runtime::telemetry::init();
    let result = match Cli::parse() {
        Cli {
            command: Some(Command::Grants(args)),
            ..
        } => logbus_ingest::grants::run(&args).await,
        Cli { run, .. } => match Worker::bind(run).await {
            Ok(worker) => worker.run(logbus_runtime::shutdown::signal()).await,
            Err(error) => Err(error),
        },
    };
    logbus_runtime::exit_code("logbus-ingest", result)
}
