//! `logbus-bridge`: adopts logbus beside an unmodified new-api. It reads new-api's own SQL
//! tables (SQLite, MySQL/MariaDB or PostgreSQL, given in new-api's DSN formats) and publishes
//! `logs` rows as log events and `users`/`tokens` rows as identity events, to the topics
//! ingest consumes (docs/events.md). See docs/adopting.md.
//!
//! Pure modules: [`dsn`] (new-api's DSNs), [`dialect`] (the SQL per database), [`mapping`]
//! (rows to events), [`cursor`] (ids read, gaps that may still fill), [`identities`]'
//! change tracker, [`progress`]' figures. I/O: [`source`] (the database), [`publish`]
//! (Kafka), [`checkpoint`] (the file), [`logs`] (the pump) and [`bridge`] (one run).

pub mod bridge;
pub mod checkpoint;
pub mod config;
pub mod cursor;
pub mod demo;
pub mod dialect;
pub mod dsn;
mod error;
pub mod identities;
pub mod logs;
pub mod mapping;
pub mod newapi_schema;
pub mod progress;
pub mod publish;
pub mod sample;
pub mod source;

pub use bridge::{run, stored_checkpoint};
pub use config::{BridgeConfig, Cli, Mode};
pub use error::Error;
pub use progress::Stats;

/// The binary's `main`: parses flags, runs until done or SIGTERM, prints the summary.
pub async fn main_with(cli: Cli) -> std::process::ExitCode {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mode = cli.mode;
    let result = run(
        mode.config(),
        mode.follow(),
        terminal,
        logbus_runtime::shutdown::signal(),
    )
    .await;
    match result {
        Ok(stats) => {
            eprintln!("logbus-bridge: {stats}");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("logbus-bridge: {error}");
            logbus_runtime::exit_code("logbus-bridge", Err(error))
        }
    }
}
