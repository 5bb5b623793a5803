//! `logbus-bridge-demo-db PATH`: creates a small new-api-shaped SQLite database to bridge
//! (`make demo-newapi`).

use std::path::PathBuf;

use clap::Parser;

/// Creates a new-api-shaped SQLite database with sample users, tokens and logs.
#[derive(Debug, Parser)]
#[command(name = "logbus-bridge-demo-db", version)]
struct Args {
    /// The SQLite file to create (it must not exist).
    path: PathBuf,
    /// Log rows.
    #[arg(long, default_value_t = 20_000)]
    rows: u64,
    /// Users (the first is root), two tokens each.
    #[arg(long, default_value_t = 20)]
    users: usize,
    /// The first user's id. `make demo-newapi` starts at 100001, clear of the ids
    /// `logbus-gen` uses (1..=its --users), so both demos can share one logbus.
    #[arg(long, default_value_t = 1)]
    first_user_id: i64,
    /// Seed of the sample rows and credentials (random when absent, so that no two demo
    /// databases share credentials).
    #[arg(long)]
    seed: Option<u64>,
    /// Also write the demo credentials as `KEY=value` lines (ROOT_ID, ACCESS_TOKEN, API_KEY,
    /// LOG_ROWS) to this file, for scripts.
    #[arg(long)]
    env_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.path.exists() {
        eprintln!("{} exists: remove it first", args.path.display());
        return std::process::ExitCode::FAILURE;
    }
    match logbus_bridge::demo::create_sqlite(
        &args.path,
        args.first_user_id,
        args.users,
        args.rows,
        args.seed.unwrap_or_else(rand::random),
    )
    .await
    {
        Ok(demo) => {
            // A demo database's credentials are printed on purpose: they are what the
            // reader tries the API with.
            println!(
                "created {} with {} log rows; root (user id {}) access token {} ; root's API key sk-{}",
                args.path.display(),
                demo.log_rows,
                demo.root.id,
                demo.root.access_token,
                demo.root_token.key
            );
            if let Some(file) = &args.env_file {
                let lines = format!(
                    "ROOT_ID={}\nACCESS_TOKEN={}\nAPI_KEY=sk-{}\nLOG_ROWS={}\n",
                    demo.root.id, demo.root.access_token, demo.root_token.key, demo.log_rows
                );
                if let Err(error) = std::fs::write(file, lines) {
                    eprintln!("logbus-bridge-demo-db: {}: {error}", file.display());
                    return std::process::ExitCode::FAILURE;
                }
            }
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("logbus-bridge-demo-db: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
