//! The worker's HTTP endpoint: /healthz (the process runs), /readyz (migrated, subscribed and
//! ClickHouse answering) and /metrics (Prometheus text). Nothing else is served here; the
//! listener is bound by [`crate::Worker::bind`], so that its address is known before the
//! worker runs, and the task serving it ends with the worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

/// Whether /readyz answers 200, set by the worker and by the retry loops.
#[derive(Debug, Clone, Default)]
pub(crate) struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub(crate) fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
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
                if endpoint.readiness.is_ready() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready")
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
