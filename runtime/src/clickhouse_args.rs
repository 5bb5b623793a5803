use clickhouse::Client;

use crate::Secret;

/// The ClickHouse connection settings that `logbus-ingest` and `logbus-query-api` share: the
/// same flags and environment variables, one client builder. The password is a [`Secret`], so
/// the `Debug` of any config holding these never shows it.
#[derive(Clone, Debug, clap::Args)]
pub struct ClickHouseArgs {
    /// ClickHouse HTTP URL.
    #[arg(
        long = "clickhouse-url",
        env = "LOGBUS_CLICKHOUSE_URL",
        default_value = "http://127.0.0.1:8123"
    )]
    pub url: String,
    /// Database holding the logbus tables (logbus-ingest creates and migrates it at start).
    #[arg(
        long = "clickhouse-database",
        env = "LOGBUS_CLICKHOUSE_DATABASE",
        default_value = "logbus"
    )]
    pub database: String,
    /// ClickHouse user; the server's default user when unset. The query API needs read access
    /// to the log tables, plus ALTER and DELETE for DELETE /api/log/.
    #[arg(long = "clickhouse-user", env = "LOGBUS_CLICKHOUSE_USER")]
    pub user: Option<String>,
    /// ClickHouse password; none when unset. Never logged.
    #[arg(
        long = "clickhouse-password",
        env = "LOGBUS_CLICKHOUSE_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<Secret>,
}

impl ClickHouseArgs {
    /// The settings of a server at `url` with the default user and database `database`, as a
    /// base for code that builds a config explicitly (tests, the bench) instead of from flags.
    pub fn new(url: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            database: database.into(),
            user: None,
            password: None,
        }
    }

    /// A client of the server with no database selected (for creating and migrating it).
    pub fn server_client(&self) -> Client {
        let mut client = Client::default().with_url(&self.url);
        if let Some(user) = self.user.as_deref().filter(|u| !u.is_empty()) {
            client = client.with_user(user);
        }
        if let Some(password) = self.password.as_ref().filter(|p| !p.is_empty()) {
            client = client.with_password(password.expose());
        }
        client
    }

    /// A client of the logbus database.
    pub fn client(&self) -> Client {
        self.server_client().with_database(&self.database)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
    }

    #[test]
    fn flags_defaults_and_masked_password() {
        let cli = Cli::try_parse_from(["x", "--clickhouse-password", "hunter2"]).expect("parses");
        assert_eq!(cli.clickhouse.url, "http://127.0.0.1:8123");
        assert_eq!(cli.clickhouse.database, "logbus");
        assert_eq!(cli.clickhouse.user, None);
        assert_eq!(
            cli.clickhouse.password.as_ref().map(Secret::expose),
            Some("hunter2")
        );
        let shown = format!("{:?}", cli.clickhouse);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}
