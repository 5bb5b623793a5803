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
    /// Users (user 1 is root), two tokens each.
    #[arg(long, default_value_t = 20)]
    users: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.path.exists() {
        eprintln!("{} exists: remove it first", args.path.display());
        return std::process::ExitCode::FAILURE;
    }
    match logbus_bridge::demo::create_sqlite(&args.path, args.users, args.rows, args.seed).await {
        Ok(demo) => {
            // A demo database's credentials are printed on purpose: they are what the
            // reader tries the API with.
            println!(
                "created {} with {} log rows; root (user id 1) access token {} ; root's API key sk-{}",
                args.path.display(),
                demo.log_rows,
                demo.root.access_token,
                demo.root_token.key
            );
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("logbus-bridge-demo-db: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
