//! `logbus-ingest grants`: the roles of least privilege ([`logbus_projections::grants`]),
//! printed for review or applied with an administrator's connection.

use clap::Args;
use logbus_projections::grants::{
    self, API_ROLE, INGEST_ROLE, Member, READER_ROLE, ReaderLimits, Statement,
};
use logbus_runtime::{ClickHouseArgs, Secret};

use crate::Error;

/// Flags of `logbus-ingest grants`. The connection (`--clickhouse-*`) must be a user allowed
/// to manage access (roles, users, settings profiles); the database is the one granted on.
#[derive(Clone, Debug, Args)]
pub struct GrantsArgs {
    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,
    /// Run the statements; without it they are only printed (passwords as ***).
    #[arg(long)]
    pub apply: bool,
    /// User that gets the logbus_ingest role (created when --ingest-password is given).
    #[arg(long, env = "LOGBUS_GRANTS_INGEST_USER")]
    pub ingest_user: Option<String>,
    #[arg(long, env = "LOGBUS_GRANTS_INGEST_PASSWORD", hide_env_values = true)]
    pub ingest_password: Option<Secret>,
    /// User that gets the logbus_api role (created when --api-password is given).
    #[arg(long, env = "LOGBUS_GRANTS_API_USER")]
    pub api_user: Option<String>,
    #[arg(long, env = "LOGBUS_GRANTS_API_PASSWORD", hide_env_values = true)]
    pub api_password: Option<Secret>,
    /// User that gets the logbus_reader role (created when --reader-password is given).
    #[arg(long, env = "LOGBUS_GRANTS_READER_USER")]
    pub reader_user: Option<String>,
    #[arg(long, env = "LOGBUS_GRANTS_READER_PASSWORD", hide_env_values = true)]
    pub reader_password: Option<Secret>,
    /// Longest an analyst's query may run (the reader profile's ceiling).
    #[arg(long, env = "LOGBUS_READER_MAX_EXECUTION_TIME_SECS", default_value_t = ReaderLimits::default().max_execution_time_secs)]
    pub reader_max_execution_time_secs: u32,
    /// Most memory one analyst query may use, in bytes.
    #[arg(long, env = "LOGBUS_READER_MAX_MEMORY_USAGE", default_value_t = ReaderLimits::default().max_memory_usage_bytes)]
    pub reader_max_memory_usage: u64,
    /// Most rows one analyst query may return.
    #[arg(long, env = "LOGBUS_READER_MAX_RESULT_ROWS", default_value_t = ReaderLimits::default().max_result_rows)]
    pub reader_max_result_rows: u64,
}

impl GrantsArgs {
    /// The statements these flags ask for.
    pub fn statements(&self) -> Result<Vec<Statement>, Error> {
        let members: Vec<Member> = [
            (INGEST_ROLE, &self.ingest_user, &self.ingest_password),
            (API_ROLE, &self.api_user, &self.api_password),
            (READER_ROLE, &self.reader_user, &self.reader_password),
        ]
        .into_iter()
        .filter_map(|(role, user, password)| {
            let user = user.as_deref().filter(|u| !u.is_empty())?;
            Some(Member {
                role,
                user: user.to_owned(),
                password: password.clone().filter(|p| !p.is_empty()),
            })
        })
        .collect();
        let limits = ReaderLimits {
            max_execution_time_secs: self.reader_max_execution_time_secs,
            max_memory_usage_bytes: self.reader_max_memory_usage,
            max_result_rows: self.reader_max_result_rows,
        };
        Ok(grants::statements(
            &self.clickhouse.database,
            &limits,
            &members,
        )?)
    }
}

/// Prints the statements (`;`-terminated, passwords hidden) and, with `--apply`, runs them in
/// order, stopping at the first failure.
pub async fn run(args: &GrantsArgs) -> Result<(), Error> {
    let statements = args.statements()?;
    let client = args.clickhouse.server_client();
    for statement in &statements {
        println!("{statement};");
        if args.apply {
            client.query(statement.sql()).execute().await.map_err(|e| {
                tracing::error!(%statement, error = %e, "grant statement failed");
                Error::from(e)
            })?;
        }
    }
    if args.apply {
        tracing::info!(statements = statements.len(), "grants applied");
    }
    Ok(())
}
