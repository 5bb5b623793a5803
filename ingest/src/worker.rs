//! The worker's life cycle, zero2prod style: [`Worker::bind`] checks the configuration and
//! binds the metrics listener (so a caller that asked for port 0 learns the address before
//! anything runs), [`Worker::run`] migrates the schema, connects to Kafka and runs the
//! consume loop until shutdown. The HTTP task lives exactly as long as `run`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

use crate::consume::{ConsumeLoop, Parts};
use crate::dead_letter::DeadLetterQueue;
use crate::http::{Phase, Readiness};
use crate::monitor::LagMonitor;
use crate::retry::Retrier;
use crate::store::Store;
use crate::writer::Writer;
use crate::{Error, IngestConfig};

/// A validated worker with its metrics listener bound, not running yet.
#[derive(Debug)]
pub struct Worker {
    config: IngestConfig,
    listener: TcpListener,
    metrics_addr: SocketAddr,
}

impl Worker {
    /// Validates `config` and binds its `http_addr`.
    pub async fn bind(config: IngestConfig) -> Result<Self, Error> {
        config.validate()?;
        let addr = config.http_addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Http { addr, source })?;
        let metrics_addr = listener
            .local_addr()
            .map_err(|source| Error::Http { addr, source })?;
        Ok(Self {
            config,
            listener,
            metrics_addr,
        })
    }

    /// The address /healthz, /readyz and /metrics are served on (the bound port when the
    /// configuration asked for port 0).
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Migrates the schema, then consumes until `shutdown` resolves; then stops fetching,
    /// flushes, commits and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let (stop_tx, stop) = watch::channel(false);
        // Both tasks end with `run`, however `run` ends (an error, or the future dropped).
        let shutdown_task = AbortOnDropHandle::new(tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        }));
        tracing::info!(config = ?self.config, "starting ingest worker");
        let readiness = Readiness::new(Duration::from_millis(
            self.config.kafka_unreachable_after_ms,
        ));
        let http_task =
            AbortOnDropHandle::new(crate::http::serve(self.listener, readiness.clone()));
        tracing::info!(http_addr = %self.metrics_addr, "serving /healthz, /readyz and /metrics");
        let result = run_consuming(self.config, readiness.clone(), stop).await;
        readiness.set_phase(Phase::Stopping);
        // Aborted and awaited, so that the endpoint's listener is closed when `run` returns.
        for task in [http_task, shutdown_task] {
            task.abort();
            let _cancelled = task.await;
        }
        result
    }
}

async fn run_consuming(
    config: IngestConfig,
    readiness: Readiness,
    stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let retrier = Retrier::new(
        readiness.clone(),
        stop.clone(),
        Duration::from_millis(config.shutdown_timeout_ms),
    );
    let cluster = config.cluster()?;
    let clustered = cluster.is_some();
    if !retrier
        .migrate(&config.clickhouse, &config.retention(), cluster)
        .await?
    {
        return Ok(());
    }
    let store = Store::new(
        config.clickhouse.client(),
        config.dedup_window_secs,
        clustered,
    );
    let (consumer, rebalances) = crate::consumer::subscribe(&config)?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()?;
    let dlq = DeadLetterQueue::new(producer, config.dlq_topic.clone());
    let monitor = LagMonitor::start(
        consumer.clone(),
        config.kafka.logs_topic.clone(),
        readiness.clone(),
        Duration::from_millis(config.lag_interval_ms),
    );
    readiness.set_phase(Phase::Running);
    let writer = Writer::new(
        &config.group_id,
        store.clone(),
        dlq.clone(),
        retrier.clone(),
        config.fail_after()?,
    );
    let consume = ConsumeLoop::new(Parts {
        config: Arc::new(config),
        consumer,
        rebalances,
        store,
        dlq,
        writer,
        retrier,
        readiness,
        stop,
    });
    let result = consume.run().await;
    monitor.stop().await;
    result
}

#[cfg(test)]
mod tests {
    use logbus_runtime::{ClickHouseArgs, KafkaArgs};

    use super::*;

    fn config() -> IngestConfig {
        let mut config = IngestConfig::new(
            KafkaArgs {
                brokers: "127.0.0.1:9".into(),
                logs_topic: "gateway.logs".into(),
                identity_topic: "gateway.identity".into(),
            },
            ClickHouseArgs::new("http://127.0.0.1:9", "logbus"),
        );
        config.http_addr = "127.0.0.1:0".parse().expect("address");
        config
    }

    #[tokio::test]
    async fn bind_reports_the_port_and_run_is_send() {
        let worker = Worker::bind(config()).await.expect("binds");
        assert_ne!(worker.metrics_addr().port(), 0);
        fn assert_send<T: Send>(_: &T) {}
        let future = worker.run(async {});
        assert_send(&future);
    }

    #[tokio::test]
    async fn bind_refuses_an_invalid_config() {
        let mut config = config();
        config.batch_max_rows = 0;
        assert!(matches!(Worker::bind(config).await, Err(Error::Config(_))));
    }

    #[tokio::test]
    async fn the_http_task_ends_with_run() {
        // No ClickHouse behind port 9 and an immediate shutdown: run gives up waiting for the
        // migration and returns; the endpoint's port is released with it.
        let worker = Worker::bind(config()).await.expect("binds");
        let addr = worker.metrics_addr();
        worker
            .run(async {})
            .await
            .expect("stops before ClickHouse answers");
        TcpListener::bind(addr)
            .await
            .expect("the metrics port is free again");
    }
}
