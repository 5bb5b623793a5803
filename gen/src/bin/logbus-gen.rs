//! `logbus-gen`: publishes realistic gateway events to Kafka (see docs/ingest.md).

use clap::Parser;
use logbus_gen::{GenConfig, admin_access_token, publish};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    logbus_runtime::telemetry::init();
    let mut config = GenConfig::parse();
    let seed = config.resolve_seed();
    eprintln!(
        "logbus-gen: seed {seed}; root user id 1, access token {} (send as Authorization: Bearer)",
        admin_access_token(seed)
    );
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match publish(&config, progress).await {
        Ok(report) => {
            eprintln!(
                "logbus-gen: published {} log events (sum quota {}) and {} identity events",
                report.log_events, report.quota, report.identity_events
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("logbus-gen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
