//! new-api's database for the bridge tests: SQLite in the test's scratch folder, or a private
//! PostgreSQL or MariaDB server (`logbus_devstack::{Postgres, MariaDb}`) on a free loopback
//! port; each with new-api's schema as gorm creates it (`logbus_bridge::newapi_schema`) and
//! written the way new-api writes it (single-row and multi-row INSERTs, UPDATEs, and an open
//! transaction that commits after a higher id became visible).

use std::path::Path;

use logbus_bridge::dialect::Dialect;
use logbus_bridge::mapping::LogSourceRow;
use logbus_bridge::newapi_schema::create_statements;
use logbus_bridge::sample::{self, SampleToken, SampleUser};
use logbus_devstack::{MariaDb, Postgres};
use sqlx::mysql::{MySql, MySqlPool};
use sqlx::postgres::{PgPool, Postgres as Pg};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

/// The database engines new-api runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
    MariaDb,
}

enum Pool {
    Postgres(PgPool),
    MySql(MySqlPool),
    Sqlite(SqlitePool),
}

macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match &$db.pool {
            Pool::Postgres($pool) => $body,
            Pool::MySql($pool) => $body,
            Pool::Sqlite($pool) => $body,
        }
    };
}

/// A transaction holding one inserted, uncommitted `logs` row (its id is taken).
pub(crate) enum OpenInsert {
    Postgres(sqlx::Transaction<'static, Pg>),
    MySql(sqlx::Transaction<'static, MySql>),
}

impl OpenInsert {
    pub(crate) async fn commit(self) {
        match self {
            OpenInsert::Postgres(tx) => tx.commit().await,
            OpenInsert::MySql(tx) => tx.commit().await,
        }
        .expect("commit the late transaction");
    }
}

/// One test's new-api database, its server (if any) and the sample identities in it.
pub(crate) struct NewApiDb {
    pub backend: Backend,
    pub dialect: Dialect,
    /// The DSN as new-api's `SQL_DSN` would hold it.
    pub dsn: String,
    pub users: Vec<SampleUser>,
    pub tokens: Vec<SampleToken>,
    pool: Pool,
    postgres: Option<Postgres>,
    mariadb: Option<MariaDb>,
    logs_written: u64,
}

/// Tokens per sample user.
pub(crate) const TOKENS_PER_USER: usize = 2;
/// Log rows per INSERT statement.
const ROWS_PER_INSERT: usize = 1_000;
/// The first sample log's `created_at`: two hours ago (rows are 20 a second).
fn logs_start() -> i64 {
    crate::support::api::now() - 7_200
}

impl NewApiDb {
    /// Starts the engine (for a server, in `dir` on a free port), creates database `newapi`
    /// with new-api's schema, `users` users and their tokens.
    pub(crate) async fn start(backend: Backend, dir: &Path, users: usize) -> Self {
        let (dialect, dsn, pool, postgres, mariadb) = match backend {
            Backend::Sqlite => {
                let path = dir.join("one-api.db");
                let options = SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true);
                let pool = SqlitePool::connect_with(options).await.expect("sqlite");
                let dsn = format!("{}?_busy_timeout=30000", path.display());
                (Dialect::Sqlite, dsn, Pool::Sqlite(pool), None, None)
            }
            Backend::Postgres => {
                let server = Postgres::start(dir, crate::support::free_port())
                    .await
                    .expect("PostgreSQL starts (installed by devstack/system-packages.sh)");
                let admin = PgPool::connect(&server.url("postgres")).await.expect("pg");
                sqlx::query("CREATE DATABASE newapi")
                    .execute(&admin)
                    .await
                    .expect("create database");
                admin.close().await;
                let dsn = server.url("newapi");
                let pool = PgPool::connect(&dsn).await.expect("pg newapi");
                (
                    Dialect::Postgres,
                    dsn,
                    Pool::Postgres(pool),
                    Some(server),
                    None,
                )
            }
            Backend::MariaDb => {
                let server = MariaDb::start(dir, crate::support::free_port())
                    .await
                    .expect("MariaDB starts (installed by devstack/system-packages.sh)");
                let url = format!("mysql://root@127.0.0.1:{}/mysql", server.port());
                let admin = MySqlPool::connect(&url).await.expect("mariadb");
                sqlx::query("CREATE DATABASE newapi CHARACTER SET utf8mb4")
                    .execute(&admin)
                    .await
                    .expect("create database");
                admin.close().await;
                let url = format!("mysql://root@127.0.0.1:{}/newapi", server.port());
                let pool = MySqlPool::connect(&url).await.expect("mariadb newapi");
                let dsn = format!(
                    "{}?charset=utf8mb4&parseTime=True&loc=Local",
                    server.dsn("newapi")
                );
                (Dialect::MySql, dsn, Pool::MySql(pool), None, Some(server))
            }
        };
        let users = sample::users(11, users);
        let tokens = sample::tokens(11, &users, TOKENS_PER_USER);
        let db = Self {
            backend,
            dialect,
            dsn,
            pool,
            postgres,
            mariadb,
            logs_written: 0,
            users,
            tokens,
        };
        for statement in create_statements(dialect) {
            db.execute(&statement).await;
        }
        db.execute(&sample::insert_users(dialect, &db.users)).await;
        db.execute(&sample::insert_tokens(dialect, &db.tokens))
            .await;
        db.execute(&sample::insert_channels(dialect)).await;
        db
    }

    pub(crate) async fn execute(&self, sql: &str) {
        on_pool!(self, pool => sqlx::query(sql).execute(pool).await.map(|_| ()))
            .unwrap_or_else(|e| panic!("{e}: {}", &sql[..sql.len().min(200)]));
    }

    /// A BIGINT query's one value.
    pub(crate) async fn scalar(&self, sql: &str) -> i64 {
        on_pool!(self, pool => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await)
            .unwrap_or_else(|e| panic!("{e}: {sql}"))
    }

    /// The next `count` sample log rows (request ids `req-<n>`, continuing the numbering).
    pub(crate) fn next_logs(&mut self, count: u64) -> Vec<LogSourceRow> {
        let first = self.logs_written;
        self.logs_written += count;
        (first..first + count)
            .map(|n| sample::log(n, logs_start(), 20, &self.users, TOKENS_PER_USER))
            .collect()
    }

    /// Inserts `count` more sample log rows, in multi-row INSERTs.
    pub(crate) async fn write_logs(&mut self, count: u64) {
        let rows = self.next_logs(count);
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            self.execute(&sample::insert_logs(self.dialect, chunk))
                .await;
        }
    }

    /// Inserts `row` inside a transaction left open (PostgreSQL and MariaDB: their ids are
    /// taken at insert, so a later row can commit first).
    pub(crate) async fn insert_uncommitted(&self, row: &LogSourceRow) -> OpenInsert {
        let sql = sample::insert_logs(self.dialect, std::slice::from_ref(row));
        match &self.pool {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await.expect("begin");
                sqlx::query(&sql).execute(&mut *tx).await.expect("insert");
                OpenInsert::Postgres(tx)
            }
            Pool::MySql(pool) => {
                let mut tx = pool.begin().await.expect("begin");
                sqlx::query(&sql).execute(&mut *tx).await.expect("insert");
                OpenInsert::MySql(tx)
            }
            Pool::Sqlite(_) => panic!("SQLite has one writer: no row commits after a higher id"),
        }
    }

    /// `count(*)` and `sum(quota)` of `logs`.
    pub(crate) async fn log_totals(&self) -> (u64, i64) {
        let bigint = match self.dialect {
            Dialect::MySql => "SIGNED",
            Dialect::Postgres => "BIGINT",
            Dialect::Sqlite => "INTEGER",
        };
        let rows = self
            .scalar(&format!("SELECT CAST(COUNT(*) AS {bigint}) FROM logs"))
            .await;
        let quota = self
            .scalar(&format!(
                "SELECT CAST(COALESCE(SUM(quota), 0) AS {bigint}) FROM logs"
            ))
            .await;
        (rows as u64, quota)
    }

    /// The plain access token of user `id`, as new-api stores it.
    pub(crate) async fn access_token(&self, id: i64) -> String {
        let sql = format!("SELECT access_token FROM users WHERE id = {id}");
        on_pool!(self, pool => sqlx::query_scalar::<_, String>(&sql).fetch_one(pool).await)
            .expect("access token")
            .trim()
            .to_owned()
    }

    /// The plain key of token `id` (without `sk-`), as new-api stores it.
    pub(crate) async fn token_key(&self, id: i64) -> String {
        let sql = format!(
            "SELECT {} FROM tokens WHERE id = {id}",
            self.dialect.quote("key")
        );
        on_pool!(self, pool => sqlx::query_scalar::<_, String>(&sql).fetch_one(pool).await)
            .expect("token key")
    }

    /// `deleted_at = now` on token `id`: gorm's soft delete.
    pub(crate) async fn soft_delete_token(&self, id: i64) {
        let now = match self.dialect {
            Dialect::Postgres => "now()",
            Dialect::MySql => "NOW(3)",
            Dialect::Sqlite => "datetime('now')",
        };
        self.execute(&format!(
            "UPDATE tokens SET deleted_at = {now} WHERE id = {id}"
        ))
        .await;
    }

    pub(crate) async fn stop(mut self) {
        on_pool!(self, pool => pool.close().await);
        if let Some(server) = self.postgres.as_mut() {
            server.stop().await.expect("PostgreSQL stops");
        }
        if let Some(server) = self.mariadb.as_mut() {
            server.stop().await.expect("MariaDB stops");
        }
    }
}
