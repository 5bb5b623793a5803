//! Retrying ClickHouse: which failures are worth retrying (transient) and which are the
//! data's fault (retrying cannot help), capped exponential backoff (100 ms doubling to 10 s),
//! and when to give up: never while running (the worker does not drop data because of an
//! unknown error), at the shutdown deadline once a shutdown was requested.
//!
//! One [`Retrier`] serves every retried call: the batch writes and lookups (which also make
//! the worker unready while ClickHouse fails), the dead-letter acknowledgements (their own
//! loop, on [`Backoff`] and the same deadline) and the schema migration at start.

use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use logbus_projections::ttl::Retention;
use metrics::{counter, gauge};
use tokio::sync::watch;

use crate::Error;
use crate::http::Readiness;
use crate::metrics::names;

const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Capped exponential backoff: 100 ms, 200 ms, … 10 s, 10 s, …
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Self {
            next: BACKOFF_START,
        }
    }

    /// The wait before the next attempt; doubles the one after it.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        wait
    }
}

/// Whether a failed ClickHouse call may succeed if retried unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Network, timeout, overload, server restarting: retry with backoff.
    Transient,
    /// The server parsed the request and rejected the data: retrying cannot help.
    Data,
}

impl Failure {
    /// The `class` label of `logbus_ingest_clickhouse_errors_total`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Failure::Transient => "transient",
            Failure::Data => "data",
        }
    }
}

/// ClickHouse error codes that mean "this data is wrong", not "try later".
const DATA_ERROR_CODES: &[u32] = &[
    6,   // CANNOT_PARSE_TEXT
    26,  // CANNOT_PARSE_QUOTED_STRING
    27,  // CANNOT_PARSE_INPUT_ASSERTION_FAILED
    32,  // ATTEMPT_TO_READ_AFTER_EOF
    33,  // CANNOT_READ_ALL_DATA
    38,  // CANNOT_PARSE_DATE
    41,  // CANNOT_PARSE_DATETIME
    53,  // TYPE_MISMATCH
    69,  // ARGUMENT_OUT_OF_BOUND
    70,  // CANNOT_CONVERT_TYPE
    72,  // CANNOT_PARSE_NUMBER
    117, // INCORRECT_DATA
    131, // TOO_LARGE_STRING_SIZE
    321, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349, // CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    395, // FUNCTION_THROW_IF_VALUE_IS_NON_ZERO_OR_NULL
    469, // VIOLATED_CONSTRAINT
];

/// TOO_MANY_PARTS: both "too many parts" (merges are behind: back-pressure, retried) and
/// "too many partitions for single INSERT block" (the block's `created_at` values span more
/// days than `max_partitions_per_insert_block`: the same block fails for ever).
const TOO_MANY_PARTS: u32 = 252;

fn error_code(text: &str) -> Option<u32> {
    text.split("Code: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse::<u32>().ok())
}

/// Whether ClickHouse refused a block for spanning too many partitions (days of `logs`): a
/// data error that smaller blocks, each over fewer days, do not have.
pub(crate) fn is_partition_limit(error: &clickhouse::error::Error) -> bool {
    match error {
        clickhouse::error::Error::BadResponse(text) => {
            error_code(text) == Some(TOO_MANY_PARTS)
                && text.contains("partitions for single INSERT block")
        }
        _ => false,
    }
}

pub(crate) fn classify(error: &clickhouse::error::Error) -> Failure {
    match error {
        clickhouse::error::Error::BadResponse(text) => match error_code(text) {
            Some(code) if DATA_ERROR_CODES.contains(&code) => Failure::Data,
            _ if is_partition_limit(error) => Failure::Data,
            _ => Failure::Transient,
        },
        _ => Failure::Transient,
    }
}

/// Why a retried call ended without a value.
#[derive(Debug)]
pub(crate) enum RetryError<E> {
    /// A failure classified [`Failure::Data`].
    Data(E),
    /// Shutdown was requested and the retries ran out of time.
    GaveUp,
}

/// How a retry loop treats an outage and a shutdown request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Batch writes and lookups: an outage makes the worker unready (and sets
    /// [`names::PAUSED`]); after a shutdown request retries go on until the deadline.
    Running,
    /// The migration at start: the worker is not ready yet anyway, and a shutdown request
    /// gives up at once (nothing was read, nothing is lost).
    Starting,
}

/// Retries calls, and knows the shutdown deadline. Cheap to clone: every write task holds
/// one, and they share the deadline.
#[derive(Debug, Clone)]
pub(crate) struct Retrier {
    readiness: Readiness,
    stop: watch::Receiver<bool>,
    deadline: Arc<OnceLock<Instant>>,
    shutdown_timeout: Duration,
}

impl Retrier {
    pub(crate) fn new(
        readiness: Readiness,
        stop: watch::Receiver<bool>,
        shutdown_timeout: Duration,
    ) -> Self {
        Self {
            readiness,
            stop,
            deadline: Arc::new(OnceLock::new()),
            shutdown_timeout,
        }
    }

    /// Starts (once) the shutdown clock and returns its deadline.
    pub(crate) fn shutdown_deadline(&self) -> Instant {
        *self
            .deadline
            .get_or_init(|| Instant::now() + self.shutdown_timeout)
    }

    /// The shutdown deadline, if shutdown was requested (also while a retry loop runs, so
    /// that SIGTERM is honoured during a ClickHouse outage).
    pub(crate) fn stopping(&self) -> Option<Instant> {
        let requested = *self.stop.borrow();
        requested.then(|| self.shutdown_deadline())
    }

    /// The error of a write that gave up at shutdown.
    pub(crate) fn gave_up(&self) -> Error {
        Error::ShutdownTimeout(self.shutdown_timeout)
    }

    /// Retries transient ClickHouse failures with capped exponential backoff. While a write
    /// retries, the consumer loop reads on only until that partition's next batch is due or
    /// every write slot is taken, then waits: memory stays bounded.
    pub(crate) async fn retry<T, F, Fut>(
        &self,
        op: &'static str,
        f: F,
    ) -> Result<T, RetryError<clickhouse::error::Error>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = clickhouse::error::Result<T>>,
    {
        self.run(op, Mode::Running, classify, f).await
    }

    /// [`Self::retry`] for bookkeeping and lookups, where a rejection is not the batch's data
    /// at fault and cannot be dead-lettered: it fails the write like giving up at shutdown.
    pub(crate) async fn retry_or_fail<T, F, Fut>(&self, op: &'static str, f: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = clickhouse::error::Result<T>>,
    {
        match self.retry(op, f).await {
            Ok(value) => Ok(value),
            Err(RetryError::Data(e)) => Err(e.into()),
            Err(RetryError::GaveUp) => Err(self.gave_up()),
        }
    }

    /// Migrates the schema and applies the retention, waiting for ClickHouse if it is not up
    /// yet. `Ok(false)`: shutdown was requested before ClickHouse became reachable. Errors
    /// other than ClickHouse's own (a changed migration, a bad database name) are not retried.
    pub(crate) async fn migrate(
        &self,
        clickhouse: &logbus_runtime::ClickHouseArgs,
        retention: &Retention,
        cluster: Option<logbus_projections::Cluster>,
    ) -> Result<bool, Error> {
        let root = clickhouse.server_client();
        let database = root.clone().with_database(&clickhouse.database);
        let options = logbus_projections::MigrateOptions {
            cluster,
            ..Default::default()
        };
        let classify_migration = |error: &logbus_projections::Error| match error {
            logbus_projections::Error::ClickHouse(_) => Failure::Transient,
            _ => Failure::Data,
        };
        let migrated = self
            .run("migrate", Mode::Starting, classify_migration, || async {
                let report =
                    logbus_projections::migrate(&root, &clickhouse.database, options.clone())
                        .await?;
                let retention =
                    logbus_projections::ttl::apply(&database, retention, options.cluster.as_ref())
                        .await?;
                Ok((report, retention))
            })
            .await;
        match migrated {
            Ok((report, retention_changes)) => {
                tracing::info!(applied = ?report.applied, ?retention, ?retention_changes,
                    "schema and retention are up to date");
                Ok(true)
            }
            Err(RetryError::GaveUp) => {
                tracing::info!("shutdown requested before ClickHouse became reachable");
                Ok(false)
            }
            Err(RetryError::Data(e)) => Err(e.into()),
        }
    }

    async fn run<T, E, F, Fut>(
        &self,
        op: &'static str,
        mode: Mode,
        classify: impl Fn(&E) -> Failure,
        mut f: F,
    ) -> Result<T, RetryError<E>>
    where
        E: Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut backoff = Backoff::new();
        let mut failing = false;
        loop {
            match f().await {
                Ok(value) => {
                    if failing && mode == Mode::Running {
                        tracing::info!(op, "ClickHouse is back");
                        gauge!(names::PAUSED).set(0.0);
                        self.readiness.set_clickhouse_unavailable(false);
                    }
                    return Ok(value);
                }
                Err(e) => {
                    let failure = classify(&e);
                    counter!(names::CLICKHOUSE_ERRORS, "op" => op, "class" => failure.label())
                        .increment(1);
                    if failure == Failure::Data {
                        return Err(RetryError::Data(e));
                    }
                    let wait = backoff.next_wait();
                    let give_up = match mode {
                        Mode::Running => self
                            .stopping()
                            .is_some_and(|deadline| Instant::now() + wait > deadline),
                        Mode::Starting => *self.stop.borrow(),
                    };
                    if give_up {
                        tracing::error!(op, error = %e, "giving up at shutdown");
                        return Err(RetryError::GaveUp);
                    }
                    if !failing && mode == Mode::Running {
                        gauge!(names::PAUSED).set(1.0);
                        self.readiness.set_clickhouse_unavailable(true);
                    }
                    failing = true;
                    tracing::warn!(op, error = %e, retry_in = ?wait, "ClickHouse call failed");
                    counter!(names::RETRIES, "op" => op).increment(1);
                    if self.stopping().is_some() {
                        tokio::time::sleep(wait).await;
                    } else {
                        self.sleep_or_stop(wait).await;
                    }
                }
            }
        }
    }

    /// Sleeps for `duration`, or less if shutdown is requested meanwhile.
    async fn sleep_or_stop(&self, duration: Duration) {
        let mut stop = self.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            () = async { let _ = stop.wait_for(|stopped| *stopped).await; } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_errors_are_told_from_transient_ones() {
        let data = clickhouse::error::Error::BadResponse(
            "Code: 27. DB::Exception: Cannot parse input: expected ','. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)".into(),
        );
        assert_eq!(classify(&data), Failure::Data);
        let overload = clickhouse::error::Error::BadResponse(
            "Code: 252. DB::Exception: Too many parts. (TOO_MANY_PARTS)".into(),
        );
        assert_eq!(classify(&overload), Failure::Transient);
        // The same code for a block spanning too many partitions: the data's fault.
        let spread = clickhouse::error::Error::BadResponse(
            "Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100). The limit is controlled by 'max_partitions_per_insert_block' setting. (TOO_MANY_PARTS) (version 26.9.2.1 (official build))".into(),
        );
        assert_eq!(classify(&spread), Failure::Data);
        assert!(is_partition_limit(&spread));
        assert!(!is_partition_limit(&overload));
        assert_eq!(
            classify(&clickhouse::error::Error::TimedOut),
            Failure::Transient
        );
        let unknown = clickhouse::error::Error::BadResponse("502 Bad Gateway".into());
        assert_eq!(classify(&unknown), Failure::Transient);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut backoff = Backoff::new();
        let waits: Vec<Duration> = (0..9).map(|_| backoff.next_wait()).collect();
        assert_eq!(waits[0], Duration::from_millis(100));
        assert_eq!(waits[1], Duration::from_millis(200));
        assert_eq!(waits[7], Duration::from_secs(10));
        assert_eq!(waits[8], Duration::from_secs(10));
    }

    fn retrier(stop: watch::Receiver<bool>, timeout: Duration) -> Retrier {
        Retrier::new(Readiness::default(), stop, timeout)
    }

    #[tokio::test]
    async fn transient_failures_are_retried_and_data_errors_are_not() {
        let (_stop_tx, stop) = watch::channel(false);
        let retrier = retrier(stop, Duration::from_millis(250));
        let mut attempts = 0;
        let value = retrier
            .retry("test", || {
                attempts += 1;
                let attempt = attempts;
                async move {
                    if attempt < 3 {
                        Err(clickhouse::error::Error::TimedOut)
                    } else {
                        Ok(attempt)
                    }
                }
            })
            .await;
        assert_eq!(value.ok(), Some(3));
        let data = retrier
            .retry("test", || async {
                Err::<(), _>(clickhouse::error::Error::BadResponse("Code: 53. x".into()))
            })
            .await;
        assert!(matches!(data, Err(RetryError::Data(_))));
    }

    #[tokio::test]
    async fn a_shutdown_gives_up_at_its_deadline() {
        let (stop_tx, stop) = watch::channel(false);
        let retrier = retrier(stop, Duration::from_millis(250));
        stop_tx.send(true).expect("receiver alive");
        let outcome = retrier
            .retry("test", || async {
                Err::<(), _>(clickhouse::error::Error::TimedOut)
            })
            .await;
        assert!(matches!(outcome, Err(RetryError::GaveUp)));
        assert!(matches!(retrier.gave_up(), Error::ShutdownTimeout(_)));
    }
}
