//! The worker's HTTP endpoint: /healthz (the process runs), /readyz (running, Kafka reachable
//! and ClickHouse answering) and /metrics (Prometheus text). Nothing else is served here; the
//! listener is bound by [`crate::Worker::bind`], so that its address is known before the
//! worker runs, and the task serving it ends with the worker.
//!
//! Readiness is the combination of independent causes, each set by the part that sees it:
//! the life-cycle [`Phase`] (the worker), ClickHouse failing (the retry loops) and the time of
//! the last successful Kafka probe (the lag monitor, [`crate::monitor`]). The probe's age is
//! judged when /readyz is asked, so a probe stuck waiting for a dead broker cannot keep the
//! worker ready. [`verdict`] turns a snapshot of the causes into the answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

/// Where the worker is in its life: only a running worker can be ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Migrating the schema and subscribing.
    Starting = 0,
    /// Consuming.
    Running = 1,
    /// Shutdown requested: flushing, committing, stopping.
    Stopping = 2,
}

/// A snapshot of what makes the worker unready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Causes {
    pub(crate) phase: Phase,
    pub(crate) kafka_unreachable: bool,
    pub(crate) clickhouse_unavailable: bool,
}

/// What /readyz answers for `causes`: `Ok` is 200 `ready`, `Err(body)` is 503 with the
/// reasons, e.g. `not ready: kafka unreachable, clickhouse unavailable`. Kafka and ClickHouse
/// are only reported while running (before, the worker is `starting`; after, `shutting down`).
pub(crate) fn verdict(causes: Causes) -> Result<(), String> {
    let reasons: Vec<&str> = match causes.phase {
        Phase::Starting => vec!["starting"],
        Phase::Stopping => vec!["shutting down"],
        Phase::Running => [
            (causes.kafka_unreachable, "kafka unreachable"),
            (causes.clickhouse_unavailable, "clickhouse unavailable"),
        ]
        .into_iter()
        .filter_map(|(applies, reason)| applies.then_some(reason))
        .collect(),
    };
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(format!("not ready: {}", reasons.join(", ")))
    }
}

/// Whether Kafka counts as unreachable: no probe ever succeeded, or the last success (`seen`)
/// is more than `after` before `now` (both measured from the same epoch).
pub(crate) fn kafka_unreachable(seen: Option<Duration>, now: Duration, after: Duration) -> bool {
    seen.is_none_or(|seen| now.saturating_sub(seen) > after)
}

#[derive(Debug)]
struct Shared {
    phase: AtomicU8,
    clickhouse_unavailable: AtomicBool,
    /// Milliseconds from `epoch` to the last successful Kafka probe, plus one (0: none yet).
    kafka_seen: AtomicU64,
    epoch: Instant,
    kafka_unreachable_after: Duration,
}

/// The causes behind /readyz, shared by the worker, the retry loops and the lag monitor.
#[derive(Debug, Clone)]
pub(crate) struct Readiness(Arc<Shared>);

impl Default for Readiness {
    fn default() -> Self {
        Self::new(Duration::from_millis(
            crate::DEFAULT_KAFKA_UNREACHABLE_AFTER_MS,
        ))
    }
}

impl Readiness {
    /// Starting, ClickHouse presumed available, Kafka not probed yet; Kafka counts as
    /// unreachable once no probe succeeded for `kafka_unreachable_after`.
    pub(crate) fn new(kafka_unreachable_after: Duration) -> Self {
        Self(Arc::new(Shared {
            phase: AtomicU8::new(Phase::Starting as u8),
            clickhouse_unavailable: AtomicBool::new(false),
            kafka_seen: AtomicU64::new(0),
            epoch: Instant::now(),
            kafka_unreachable_after,
        }))
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        self.0.phase.store(phase as u8, Ordering::Relaxed);
    }

    /// Set by the retry loops: ClickHouse calls fail (`true`) or answer again (`false`).
    pub(crate) fn set_clickhouse_unavailable(&self, unavailable: bool) {
        self.0
            .clickhouse_unavailable
            .store(unavailable, Ordering::Relaxed);
    }

    /// Set by the lag monitor each time the broker answered its probe.
    pub(crate) fn kafka_reached(&self) {
        let millis = u64::try_from(self.0.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.0.kafka_seen.store(millis + 1, Ordering::Relaxed);
    }

    pub(crate) fn causes(&self) -> Causes {
        let phase = match self.0.phase.load(Ordering::Relaxed) {
            0 => Phase::Starting,
            1 => Phase::Running,
            _ => Phase::Stopping,
        };
        let seen = match self.0.kafka_seen.load(Ordering::Relaxed) {
            0 => None,
            millis => Some(Duration::from_millis(millis - 1)),
        };
        Causes {
            phase,
            kafka_unreachable: kafka_unreachable(
                seen,
                self.0.epoch.elapsed(),
                self.0.kafka_unreachable_after,
            ),
            clickhouse_unavailable: self.0.clickhouse_unavailable.load(Ordering::Relaxed),
        }
    }
}

#[derive(Clone)]
struct Endpoint {
    readiness: Readiness,
    metrics: PrometheusHandle,
}

/// Serves the endpoint on `listener` until the returned task is aborted.
pub(crate) fn serve(listener: TcpListener, readiness: Readiness) -> tokio::task::JoinHandle<()> {
    let endpoint = Endpoint {
        readiness,
        metrics: crate::metrics::handle(),
    };
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(endpoint): State<Endpoint>| async move {
                match verdict(endpoint.readiness.causes()) {
                    Ok(()) => (StatusCode::OK, "ready".to_owned()),
                    Err(body) => (StatusCode::SERVICE_UNAVAILABLE, body),
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(endpoint): State<Endpoint>| async move { endpoint.metrics.render() }),
        )
        .with_state(endpoint);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "metrics endpoint stopped");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(kafka_unreachable: bool, clickhouse_unavailable: bool) -> Causes {
        Causes {
            phase: Phase::Running,
            kafka_unreachable,
            clickhouse_unavailable,
        }
    }

    #[test]
    fn the_verdict_names_every_cause() {
        assert_eq!(verdict(running(false, false)), Ok(()));
        assert_eq!(
            verdict(running(true, false)),
            Err("not ready: kafka unreachable".into())
        );
        assert_eq!(
            verdict(running(false, true)),
            Err("not ready: clickhouse unavailable".into())
        );
        assert_eq!(
            verdict(running(true, true)),
            Err("not ready: kafka unreachable, clickhouse unavailable".into())
        );
    }

    #[test]
    fn only_a_running_worker_is_ready() {
        for (phase, body) in [
            (Phase::Starting, "not ready: starting"),
            (Phase::Stopping, "not ready: shutting down"),
        ] {
            let causes = Causes {
                phase,
                ..running(false, false)
            };
            assert_eq!(verdict(causes), Err(body.into()));
            let causes = Causes {
                phase,
                ..running(true, true)
            };
            assert_eq!(verdict(causes), Err(body.into()));
        }
    }

    #[test]
    fn kafka_is_unreachable_until_probed_and_when_the_last_probe_is_old() {
        let after = Duration::from_secs(5);
        let s = Duration::from_secs;
        assert!(kafka_unreachable(None, s(0), after));
        assert!(kafka_unreachable(None, s(100), after));
        assert!(!kafka_unreachable(Some(s(10)), s(10), after));
        assert!(!kafka_unreachable(Some(s(10)), s(15), after));
        assert!(kafka_unreachable(Some(s(10)), s(16), after));
        // A probe stamped after `now` was read (a race between the two loads) is fresh.
        assert!(!kafka_unreachable(Some(s(10)), s(9), after));
    }

    #[test]
    fn readiness_combines_what_each_part_sets() {
        let readiness = Readiness::new(Duration::from_secs(60));
        assert_eq!(readiness.causes().phase, Phase::Starting);
        readiness.set_phase(Phase::Running);
        assert_eq!(
            verdict(readiness.causes()),
            Err("not ready: kafka unreachable".into())
        );
        readiness.kafka_reached();
        assert_eq!(verdict(readiness.causes()), Ok(()));
        readiness.set_clickhouse_unavailable(true);
        assert_eq!(
            verdict(readiness.causes()),
            Err("not ready: clickhouse unavailable".into())
        );
        readiness.set_clickhouse_unavailable(false);
        assert_eq!(verdict(readiness.causes()), Ok(()));
        readiness.set_phase(Phase::Stopping);
        assert_eq!(
            verdict(readiness.causes()),
            Err("not ready: shutting down".into())
        );
    }
}
