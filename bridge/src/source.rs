//! A new-api database, read: one sqlx pool of the right backend behind [`Source`], the same
//! queries ([`crate::dialect`]) and row types ([`crate::mapping`]) for all three.

use std::collections::HashMap;

use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};

use crate::Error;
use crate::dialect::{
    Columns, Dialect, REQUIRED_LOG_COLUMNS, REQUIRED_TOKEN_COLUMNS, REQUIRED_USER_COLUMNS,
};
use crate::dsn::SourceOptions;
use crate::mapping::{LogSourceRow, TokenSourceRow, UserSourceRow};

/// Connections per source: the bridge reads with one query at a time per table.
const MAX_CONNECTIONS: u32 = 2;

#[derive(Debug, Clone)]
enum Pool {
    Postgres(PgPool),
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

/// Runs `$body` with `$pool` bound to the concrete pool (each arm compiles the same code for
/// its backend).
macro_rules! on_pool {
    ($source:expr, $pool:ident => $body:expr) => {
        match &$source.pool {
            Pool::Postgres($pool) => $body,
            Pool::MySql($pool) => $body,
            Pool::Sqlite($pool) => $body,
        }
    };
}

/// One source database and what its tables look like.
#[derive(Debug, Clone)]
pub struct Source {
    pool: Pool,
    dialect: Dialect,
    name: String,
}

/// The statements of one table, built once from its columns.
#[derive(Debug, Clone)]
pub struct LogQueries {
    columns: Columns,
    after: String,
}

impl Source {
    /// Connects (lazily checked by a first query) to `options`; `name` is how logs call it.
    pub async fn connect(options: SourceOptions, name: String) -> Result<Self, Error> {
        let (pool, dialect) = match options {
            SourceOptions::Postgres(o) => (
                PgPoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .connect_with(o)
                    .await
                    .map(Pool::Postgres),
                Dialect::Postgres,
            ),
            SourceOptions::MySql(o) => (
                MySqlPoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .connect_with(o)
                    .await
                    .map(Pool::MySql),
                Dialect::MySql,
            ),
            SourceOptions::Sqlite(o) => (
                SqlitePoolOptions::new()
                    .max_connections(MAX_CONNECTIONS)
                    .connect_with(o)
                    .await
                    .map(Pool::Sqlite),
                Dialect::Sqlite,
            ),
        };
        let pool = pool.map_err(|error| Error::Source {
            source_name: name.clone(),
            error,
        })?;
        Ok(Self {
            pool,
            dialect,
            name,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn failed(&self) -> impl FnOnce(sqlx::Error) -> Error + '_ {
        |error| Error::Source {
            source_name: self.name.clone(),
            error,
        }
    }

    /// The columns of `table`, checked to hold `required`.
    async fn columns(&self, table: &'static str, required: &[&str]) -> Result<Columns, Error> {
        let sql = self.dialect.columns_of();
        let names: Vec<String> = on_pool!(self, pool => {
            sqlx::query_scalar(&sql).bind(table).fetch_all(pool).await
        })
        .map_err(self.failed())?;
        let columns = Columns::new(names);
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|c| !columns.has(c))
            .collect();
        if !missing.is_empty() {
            return Err(Error::Schema {
                source_name: self.name.clone(),
                table,
                missing: missing.join(", "),
            });
        }
        Ok(columns)
    }

    /// The statements for `logs` in this database.
    pub async fn log_queries(&self) -> Result<LogQueries, Error> {
        let columns = self.columns("logs", REQUIRED_LOG_COLUMNS).await?;
        Ok(LogQueries {
            after: self.dialect.logs_after(&columns),
            columns,
        })
    }

    pub async fn max_log_id(&self) -> Result<i64, Error> {
        let sql = self.dialect.max_log_id();
        on_pool!(self, pool => sqlx::query_scalar(sql).fetch_one(pool).await).map_err(self.failed())
    }

    /// At most `limit` rows with `id > after`, in id order.
    pub async fn logs_after(
        &self,
        queries: &LogQueries,
        after: i64,
        limit: usize,
    ) -> Result<Vec<LogSourceRow>, Error> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        on_pool!(self, pool => {
            sqlx::query_as::<_, LogSourceRow>(&queries.after)
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await
        })
        .map_err(self.failed())
    }

    /// The rows inside `ranges` (inclusive id ranges), in id order.
    pub async fn logs_in(
        &self,
        queries: &LogQueries,
        ranges: &[(i64, i64)],
    ) -> Result<Vec<LogSourceRow>, Error> {
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        let sql = self.dialect.logs_in_ranges(&queries.columns, ranges.len());
        on_pool!(self, pool => {
            let mut query = sqlx::query_as::<_, LogSourceRow>(&sql);
            for (from, to) in ranges {
                query = query.bind(*from).bind(*to);
            }
            query.fetch_all(pool).await
        })
        .map_err(self.failed())
    }

    /// Every user (soft-deleted ones too).
    pub async fn users(&self) -> Result<Vec<UserSourceRow>, Error> {
        let columns = self.columns("users", REQUIRED_USER_COLUMNS).await?;
        let sql = self.dialect.users(&columns);
        on_pool!(self, pool => sqlx::query_as::<_, UserSourceRow>(&sql).fetch_all(pool).await)
            .map_err(self.failed())
    }

    /// Every token (soft-deleted ones too).
    pub async fn tokens(&self) -> Result<Vec<TokenSourceRow>, Error> {
        let columns = self.columns("tokens", REQUIRED_TOKEN_COLUMNS).await?;
        let sql = self.dialect.tokens(&columns);
        on_pool!(self, pool => sqlx::query_as::<_, TokenSourceRow>(&sql).fetch_all(pool).await)
            .map_err(self.failed())
    }

    /// Channel names by id; empty when the database has no `channels` table.
    pub async fn channel_names(&self) -> Result<HashMap<i64, String>, Error> {
        if self.columns("channels", &[]).await?.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = self.dialect.channels();
        let rows: Vec<(i64, String)> =
            on_pool!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)
                .map_err(self.failed())?;
        Ok(rows.into_iter().collect())
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}
