//! A small new-api-shaped SQLite database (`logbus-bridge-demo-db`, `make demo-newapi`): new-api's
//! schema as gorm creates it, sample users, tokens, channels and log rows.

use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use crate::dialect::Dialect;
use crate::newapi_schema::create_statements;
use crate::sample::{self, SampleToken, SampleUser};

/// Log rows per `INSERT`.
const ROWS_PER_INSERT: usize = 500;

/// What was created: the root user (the first id) and one of its tokens, to try the API with.
#[derive(Debug, Clone)]
pub struct Demo {
    pub root: SampleUser,
    pub root_token: SampleToken,
    pub log_rows: u64,
}

/// Creates `path` (it must not exist) with `users` users (ids from `first_user_id`), two
/// tokens each, and `log_rows` log rows spread over the last day.
pub async fn create_sqlite(
    path: &Path,
    first_user_id: i64,
    users: usize,
    log_rows: u64,
    seed: u64,
) -> Result<Demo, sqlx::Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    for statement in create_statements(Dialect::Sqlite) {
        sqlx::query(&statement).execute(&pool).await?;
    }
    let users = sample::users_from(seed, first_user_id, users.max(1));
    let tokens = sample::tokens(seed, &users, 2);
    sqlx::query(&sample::insert_users(Dialect::Sqlite, &users))
        .execute(&pool)
        .await?;
    sqlx::query(&sample::insert_tokens(Dialect::Sqlite, &tokens))
        .execute(&pool)
        .await?;
    sqlx::query(&sample::insert_channels(Dialect::Sqlite))
        .execute(&pool)
        .await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let per_second = (log_rows / 86_400).max(1);
    let start = now - (log_rows / per_second) as i64;
    let mut n = 0;
    while n < log_rows {
        let rows: Vec<_> = (n..log_rows.min(n + ROWS_PER_INSERT as u64))
            .map(|i| sample::log(i, start, per_second, &users, 2))
            .collect();
        sqlx::query(&sample::insert_logs(Dialect::Sqlite, &rows))
            .execute(&pool)
            .await?;
        n += rows.len() as u64;
    }
    pool.close().await;
    Ok(Demo {
        root: users[0].clone(),
        root_token: tokens[0].clone(),
        log_rows,
    })
}
