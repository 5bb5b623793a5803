//! /healthz, /readyz and /metrics (Prometheus text format).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::Error;

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
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder (installed once, shared by every worker in the
/// process, e.g. several workers in one test binary).
pub fn metrics_handle() -> PrometheusHandle {
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
}

#[derive(Clone)]
pub struct Health {
    pub ready: Arc<AtomicBool>,
    handle: PrometheusHandle,
}

impl Health {
    pub fn new() -> Self {
        Self {
            ready: Arc::new(AtomicBool::new(false)),
            handle: metrics_handle(),
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
}

/// Binds the endpoint and serves it until the returned task is aborted.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Http { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| Error::Http { addr, source })?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(health): State<Health>| async move {
                if health.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(health): State<Health>| async move { health.handle.render() }),
        )
        .with_state(health);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok((local, task))
}
