//! Every ClickHouse query of the API, one file per concern: [`logs`] (list, search, a token's
//! logs, stat), [`export`] (the cursor of an export), [`stat_plan`] (the pure planner of the stat's quota tiers), [`dashboard`]
//! (new-api's hourly `/api/data` rows), [`series_plan`] and [`series`] (the time series: pure
//! planner, then the run and fold), [`retention`] (the delete, with [`retention_plan`], its pure plan, and [`retention_lock`], the lock across replicas) and [`identities`] (the users
//! and tokens authentication looks up) and [`tail`] (the live tail's reads). Values always
//! travel as server-side query parameters (see [`crate::sql`]), never inside the SQL text.

use std::future::Future;
use std::time::{Duration, Instant};

use clickhouse::Client;
use metrics::{counter, histogram};

use crate::error::DbError;
use crate::metrics::names;
use crate::sql::Conditions;

pub mod dashboard;
pub mod export;
pub mod identities;
pub mod logs;
pub mod retention;
pub mod retention_lock;
pub mod retention_plan;
pub mod series;
pub mod series_plan;
pub mod stat_plan;
pub mod tail;

pub use export::LogRows;
pub use logs::{ListPage, RATE_WINDOW_SECS, SEARCH_LIMIT, Stat, TOKEN_LOGS_LIMIT};
pub use stat_plan::quota_queries;

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// The ClickHouse clients of the API, with the deadline of every query.
///
/// Every read goes through `client`, which sends `readonly = 2`: ClickHouse then refuses any
/// write through it (settings may still be changed per query), so even a misconfigured user
/// with write grants cannot write through a read. Only the retention delete writes, through
/// `writer`.
#[derive(Debug, Clone)]
pub struct Store {
    client: Client,
    writer: Client,
    timeout: Duration,
    /// How long one export may stream (ClickHouse's `max_execution_time` of its query).
    export_timeout: Duration,
}

impl Store {
    pub fn new(client: Client, timeout: Duration) -> Self {
        Self {
            client: client.clone().with_setting("readonly", "2"),
            writer: client,
            timeout,
            // Until told otherwise, an export gets no longer than any other query.
            export_timeout: timeout,
        }
    }

    /// The same store whose exports may stream for `export_timeout`.
    pub fn with_export_timeout(mut self, export_timeout: Duration) -> Self {
        self.export_timeout = export_timeout;
        self
    }

    /// `query`, failed with [`DbError::Timeout`] when it outlives the deadline; its time and
    /// failure counted under `kind` (one fixed name per statement of the store, e.g.
    /// `list_count`: a bounded label).
    async fn timed<T>(
        &self,
        kind: &'static str,
        query: impl Future<Output = clickhouse::error::Result<T>>,
    ) -> Result<T, DbError> {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, query).await {
            Ok(result) => result.map_err(DbError::from),
            Err(_) => Err(DbError::Timeout(self.timeout)),
        };
        histogram!(names::QUERY_SECONDS, "kind" => kind).record(started.elapsed().as_secs_f64());
        if let Err(error) = &result {
            let label = match error {
                DbError::ClickHouse(_) => "clickhouse",
                DbError::Timeout(_) => "timeout",
            };
            counter!(names::QUERY_ERRORS, "kind" => kind, "error" => label).increment(1);
        }
        result
    }

    /// `sql` with the values of `conditions` bound, as a read.
    fn query(&self, sql: &str, conditions: &Conditions) -> clickhouse::query::Query {
        conditions.apply(self.client.query(sql))
    }

    /// `sql` with the values of `conditions` bound, as a write (the retention delete only).
    fn write(&self, sql: &str, conditions: &Conditions) -> clickhouse::query::Query {
        conditions.apply(self.writer.query(sql))
    }

    /// The client every read goes through (`readonly = 2`).
    pub fn read_client(&self) -> &Client {
        &self.client
    }

    pub async fn ping(&self) -> Result<(), DbError> {
        self.timed("ping", self.client.query("SELECT 1").fetch_one::<u8>())
            .await
            .map(drop)
    }
}
