//! The worker's metrics: their names (one home, so the code that counts and the docs'
//! table name the same series), their descriptions and the process-wide Prometheus recorder
//! that /metrics renders (the one of
//! [`logbus_runtime::metrics`], whose `_seconds` rule gives `FLUSH_SECONDS` its buckets). Counting itself is done where the event happens, through the
//! `metrics` macros.

use std::sync::Once;

use metrics_exporter_prometheus::PrometheusHandle;

pub mod names {
    pub const EVENTS_IN: &str = "logbus_ingest_events_in_total";
    pub const MESSAGES_IN: &str = "logbus_ingest_messages_in_total";
    pub const ROWS_WRITTEN: &str = "logbus_ingest_rows_written_total";
    pub const DUPLICATES_DROPPED: &str = "logbus_ingest_duplicates_dropped_total";
    pub const BATCHES: &str = "logbus_ingest_batches_total";
    pub const DEAD_LETTERS: &str = "logbus_ingest_dead_letters_total";
    pub const RETRIES: &str = "logbus_ingest_retries_total";
    pub const FLUSH_SECONDS: &str = "logbus_ingest_flush_duration_seconds";
    pub const COMMITTED_OFFSET: &str = "logbus_ingest_committed_offset";
    pub const COMMIT_ERRORS: &str = "logbus_ingest_commit_errors_total";
    pub const IDENTITY_ROWS: &str = "logbus_ingest_identity_rows_written_total";
    pub const REBALANCES: &str = "logbus_ingest_rebalances_total";
    pub const PAUSED: &str = "logbus_ingest_clickhouse_unavailable";
    pub const REPLAYED_BATCHES: &str = "logbus_ingest_replayed_batches_total";
    pub const CONSUMER_LAG: &str = "logbus_ingest_consumer_lag";
    // A gauge despite its suffix: the sum of `CONSUMER_LAG` over this worker's partitions.
    pub const CONSUMER_LAG_TOTAL: &str = "logbus_ingest_consumer_lag_total";
    // Unix times rather than ages: Prometheus computes the age (`time() - ...`) at query
    // time, so a worker that stopped updating them still shows an ageing value.
    pub const LAST_FLUSH: &str = "logbus_ingest_last_flush_timestamp_seconds";
    pub const LAST_COMMIT: &str = "logbus_ingest_last_commit_timestamp_seconds";
    pub const CLICKHOUSE_ERRORS: &str = "logbus_ingest_clickhouse_errors_total";

    /// Every name above (the dashboard's test checks its queries against them).
    pub const ALL: &[&str] = &[
        EVENTS_IN,
        MESSAGES_IN,
        ROWS_WRITTEN,
        DUPLICATES_DROPPED,
        BATCHES,
        DEAD_LETTERS,
        RETRIES,
        FLUSH_SECONDS,
        COMMITTED_OFFSET,
        COMMIT_ERRORS,
        IDENTITY_ROWS,
        REBALANCES,
        PAUSED,
        REPLAYED_BATCHES,
        CONSUMER_LAG,
        CONSUMER_LAG_TOTAL,
        LAST_FLUSH,
        LAST_COMMIT,
        CLICKHOUSE_ERRORS,
    ];
}

/// Now as Unix seconds, the value of the `*_timestamp_seconds` gauges.
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

static DESCRIBED: Once = Once::new();

/// The process-wide Prometheus recorder ([`logbus_runtime::metrics::handle`], shared with every
/// other worker or API in the process), with the worker's metrics described.
pub(crate) fn handle() -> PrometheusHandle {
    let handle = logbus_runtime::metrics::handle();
    DESCRIBED.call_once(describe);
    handle
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(names::MESSAGES_IN, "Kafka messages consumed");
    describe_counter!(
        names::EVENTS_IN,
        "Log events consumed (array elements counted)"
    );
    describe_counter!(names::ROWS_WRITTEN, "Rows inserted into logs");
    describe_counter!(
        names::DUPLICATES_DROPPED,
        "Events dropped because their event_id was already stored or repeated in the batch"
    );
    describe_counter!(names::BATCHES, "Batches flushed, by topic kind");
    describe_counter!(
        names::DEAD_LETTERS,
        "Events sent to the dead-letter topic, by reason"
    );
    describe_counter!(
        names::RETRIES,
        "Retried ClickHouse or Kafka operations, by operation"
    );
    describe_histogram!(
        names::FLUSH_SECONDS,
        "Time to flush one batch, retries included"
    );
    describe_gauge!(
        names::COMMITTED_OFFSET,
        "Last committed offset, by topic and partition"
    );
    describe_counter!(names::COMMIT_ERRORS, "Failed offset commits");
    describe_counter!(names::IDENTITY_ROWS, "Rows written to users and tokens");
    describe_counter!(names::REBALANCES, "Partition assignments and revocations");
    describe_gauge!(
        names::PAUSED,
        "1 while ClickHouse is failing and fetching is stopped"
    );
    describe_counter!(
        names::REPLAYED_BATCHES,
        "Batches cut at recorded intent boundaries after a restart or rebalance"
    );
    describe_gauge!(
        names::CONSUMER_LAG,
        "Messages of an assigned partition not yet committed by the group: high watermark minus committed offset (low watermark if none), by topic and partition; 0 once revoked"
    );
    describe_gauge!(
        names::CONSUMER_LAG_TOTAL,
        "Sum of logbus_ingest_consumer_lag over the partitions assigned to this worker"
    );
    describe_gauge!(
        names::LAST_FLUSH,
        "Unix time of the last batch flushed (written and its dead letters delivered), by topic kind"
    );
    describe_gauge!(
        names::LAST_COMMIT,
        "Unix time of the last successful offset commit"
    );
    describe_counter!(
        names::CLICKHOUSE_ERRORS,
        "Failed ClickHouse calls, by operation and class (transient: retried; data: the rows' fault)"
    );
}
