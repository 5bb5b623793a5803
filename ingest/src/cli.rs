//! The `logbus-ingest` command line: without a subcommand it runs the worker (every existing
//! invocation keeps its meaning); `grants` prints or applies the roles of least privilege;
//! `migrations --print` prints the schema's SQL instead, so a cluster's DDL can be reviewed
//! before a worker applies it.

use clap::{Parser, Subcommand};

use crate::grants::GrantsArgs;
use crate::{Error, IngestConfig};

#[derive(Debug, Parser)]
#[command(
    name = "logbus-ingest",
    version,
    about = "Kafka to ClickHouse ingest worker",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: IngestConfig,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print (or, with --apply, run) the SQL that creates the roles logbus_ingest,
    /// logbus_api and logbus_reader and the reader's settings profile (docs/operations.md).
    Grants(Box<GrantsArgs>),
    /// The schema migrations, without connecting to anything.
    Migrations {
        /// Print every statement the worker runs on a fresh --clickhouse-database (the
        /// cluster variant with --clickhouse-cluster), separated by lines holding only `;`.
        #[arg(long, required = true)]
        print: bool,
    },
}

/// The SQL `logbus-ingest migrations --print` prints for `config`.
pub fn migrations_script(config: &IngestConfig) -> Result<String, Error> {
    let cluster = config.cluster()?;
    Ok(logbus_projections::cluster::script(
        &config.clickhouse.database,
        cluster.as_ref(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_subcommand_runs_the_worker_with_its_flags() {
        let cli =
            Cli::try_parse_from(["logbus-ingest", "--group-id", "g", "--batch-max-rows", "7"])
                .expect("parses");
        assert!(cli.command.is_none());
        assert_eq!(
            (cli.config.group_id.as_str(), cli.config.batch_max_rows),
            ("g", 7)
        );
    }

    #[test]
    fn migrations_print_takes_the_cluster_after_the_subcommand() {
        let args = [
            "logbus-ingest",
            "migrations",
            "--print",
            "--clickhouse-cluster",
            "c1",
        ];
        let cli = Cli::try_parse_from(args).expect("parses");
        assert!(matches!(
            cli.command,
            Some(Command::Migrations { print: true })
        ));
        let script = migrations_script(&cli.config).expect("script");
        assert!(
            script.starts_with("CREATE DATABASE IF NOT EXISTS `logbus` ON CLUSTER 'c1'\n;\n"),
            "{script}"
        );
        // Worker flags never mix with a subcommand.
        let before = [
            "logbus-ingest",
            "--clickhouse-cluster",
            "c1",
            "migrations",
            "--print",
        ];
        assert!(Cli::try_parse_from(before).is_err());
        let single =
            Cli::try_parse_from(["logbus-ingest", "migrations", "--print"]).expect("parses");
        if single.config.clickhouse_cluster.is_none() {
            let script = migrations_script(&single.config).expect("script");
            assert!(!script.contains("ON CLUSTER"), "{script}");
        }
        assert!(Cli::try_parse_from(["logbus-ingest", "migrations"]).is_err());
    }
}
