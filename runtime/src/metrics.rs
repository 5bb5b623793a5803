//! The process-wide Prometheus recorder. `metrics::set_global_recorder` succeeds once per
//! process, and the ingest worker and the query API may run in one process (the integration
//! tests run both), so both register into this one recorder and each renders all of it on its
//! `/metrics`. The services' metric names live with the services; this module knows only the
//! naming rule it relies on: every histogram is in seconds and ends in `_seconds`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The buckets of every `*_seconds` histogram: from a 1 ms cached request to a minute-long
/// ClickHouse flush or export start.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use. Histograms named `*_seconds` are rendered
/// as Prometheus histograms over [`SECONDS_BUCKETS`] (others as summaries).
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .expect("non-empty buckets")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_histograms_get_the_buckets() {
        let handle = handle();
        metrics::histogram!("logbus_runtime_test_duration_seconds").record(0.003);
        let text = handle.render();
        assert!(
            text.contains("logbus_runtime_test_duration_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("logbus_runtime_test_duration_seconds_bucket{le=\"0.0025\"} 0"),
            "{text}"
        );
        assert!(text.contains("logbus_runtime_test_duration_seconds_count 1"));
        assert!(SECONDS_BUCKETS.is_sorted());
    }
}
