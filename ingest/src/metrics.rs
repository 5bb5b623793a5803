//! The worker's metrics: their names (one home, so the code that counts and the docs'
//! table name the same series), their descriptions and the process-wide Prometheus recorder
//! that /metrics renders. Counting itself is done where the event happens, through the
//! `metrics` macros.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub(crate) mod names {
    pub(crate) const EVENTS_IN: &str = "logbus_ingest_events_in_total";
    pub(crate) const MESSAGES_IN: &str = "logbus_ingest_messages_in_total";
    pub(crate) const ROWS_WRITTEN: &str = "logbus_ingest_rows_written_total";
    pub(crate) const DUPLICATES_DROPPED: &str = "logbus_ingest_duplicates_dropped_total";
    pub(crate) const BATCHES: &str = "logbus_ingest_batches_total";
    pub(crate) const DEAD_LETTERS: &str = "logbus_ingest_dead_letters_total";
    pub(crate) const RETRIES: &str = "logbus_ingest_retries_total";
    pub(crate) const FLUSH_SECONDS: &str = "logbus_ingest_flush_duration_seconds";
    pub(crate) const COMMITTED_OFFSET: &str = "logbus_ingest_committed_offset";
    pub(crate) const COMMIT_ERRORS: &str = "logbus_ingest_commit_errors_total";
    pub(crate) const IDENTITY_ROWS: &str = "logbus_ingest_identity_rows_written_total";
    pub(crate) const REBALANCES: &str = "logbus_ingest_rebalances_total";
    pub(crate) const PAUSED: &str = "logbus_ingest_clickhouse_unavailable";
    pub(crate) const REPLAYED_BATCHES: &str = "logbus_ingest_replayed_batches_total";
    pub(crate) const CONSUMER_LAG: &str = "logbus_ingest_consumer_lag";
    // A gauge despite its suffix: the sum of `CONSUMER_LAG` over this worker's partitions.
    pub(crate) const CONSUMER_LAG_TOTAL: &str = "logbus_ingest_consumer_lag_total";
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder (installed once, shared by every worker in the
/// process, e.g. several workers in one test binary).
pub(crate) fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(names::FLUSH_SECONDS.into()),
                    &[
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    ],
                )
                .expect("valid buckets")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            describe();
            handle
        })
        .clone()
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
}
