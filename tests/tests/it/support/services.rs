//! The logbus services as the tests run them: in-process, bound to port 0 before they serve
//! (the address is known without racing for a free port), stopped through their shutdown
//! future like SIGTERM stops the binaries.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use logbus_devstack::Process;
use logbus_ingest::{IngestConfig, Worker};
use logbus_query_api::{Config, Server};
use logbus_runtime::ClickHouseArgs;
use nix::sys::signal::Signal;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The ClickHouse settings of the test stack for `database`, from an explicit base (never from
/// the caller's `LOGBUS_*` environment).
pub(crate) fn clickhouse_args(database: &str) -> ClickHouseArgs {
    ClickHouseArgs::new(crate::support::clickhouse_url(), database)
}

/// A query-API config on port 0 over `clickhouse`, every other setting at its default.
pub(crate) fn api_config(clickhouse: ClickHouseArgs) -> Config {
    Config::new("127.0.0.1:0".parse().expect("address"), clickhouse)
}

/// The query API serving in this process until [`ServedApi::stop`] (or until dropped).
#[derive(Debug)]
pub(crate) struct ServedApi {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ServedApi {
    pub(crate) async fn start(config: &Config) -> Self {
        let server = Server::bind(config).await.expect("bind the query API");
        let base = format!("http://{}", server.local_addr());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve the query API");
        });
        Self {
            base,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Graceful shutdown: open requests finish, then the server returns.
    pub(crate) async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let task = self.task.take().expect("serving");
        task.await.expect("the query API stops cleanly");
    }
}

impl Drop for ServedApi {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// An ingest worker running in this process, bound (its metrics address known) before it
/// runs; [`InProcessWorker::stop`] stops it the way SIGTERM stops the binary.
#[derive(Debug)]
pub(crate) struct InProcessWorker {
    metrics_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), logbus_ingest::Error>>>,
}

impl InProcessWorker {
    pub(crate) async fn start(config: IngestConfig) -> Self {
        let worker = Worker::bind(config).await.expect("the worker binds");
        let metrics_addr = worker.metrics_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(worker.run(async move {
            let _ = stopped.await;
        }));
        Self {
            metrics_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `GET <path>` of the worker's endpoint (see [`get`]).
    pub(crate) async fn get(&self, path: &str) -> Option<(u16, String)> {
        get(self.metrics_addr, path).await
    }

    /// The value of `series` in the worker's `/metrics` (see [`scrape`]).
    pub(crate) async fn metric(&self, series: &str) -> Option<f64> {
        scrape(self.metrics_addr, series).await
    }

    pub(crate) async fn stop(mut self) -> Result<(), logbus_ingest::Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("worker stops within 60 s")
            .expect("worker task did not panic")
    }
}

impl Drop for InProcessWorker {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// `config` as the command line of the worker binary (every setting the tests change).
fn worker_args(config: &IngestConfig) -> Vec<String> {
    vec![
        format!("--brokers={}", config.kafka.brokers),
        format!("--group-id={}", config.group_id),
        format!("--logs-topic={}", config.kafka.logs_topic),
        format!("--identity-topic={}", config.kafka.identity_topic),
        format!("--dlq-topic={}", config.dlq_topic),
        format!("--clickhouse-url={}", config.clickhouse.url),
        format!("--clickhouse-database={}", config.clickhouse.database),
        format!("--http-addr={}", config.http_addr),
        format!("--session-timeout-ms={}", config.session_timeout_ms),
        format!("--flush-interval-ms={}", config.flush_interval_ms),
        format!("--batch-max-rows={}", config.batch_max_rows),
        format!("--retention-raw-days={}", config.retention_raw_days),
        format!("--retention-rollup-days={}", config.retention_rollup_days),
    ]
}

/// What the worker logs once its endpoint is bound (a JSON line with `LOGBUS_LOG_JSON=1`).
const SERVING: &str = "serving /healthz, /readyz and /metrics";

/// The ingest worker as a real process (`logbus-ingest-under-test`, the `logbus-ingest` binary
/// built in this crate), for tests that SIGKILL, SIGTERM or abort it. Its log is JSON lines in
/// `log`; its metrics address is read from its own log line, so it binds port 0 like the
/// in-process worker. Dropping it SIGKILLs it.
#[derive(Debug)]
pub(crate) struct WorkerProcess {
    process: Process,
    metrics_addr: Option<SocketAddr>,
}

impl WorkerProcess {
    /// Starts the worker with `config` (its `http_addr` should ask for port 0) and, when
    /// given, a fail point (`after-insert:N`). Returns once the worker logged its metrics
    /// address, or once it exited (a fail point may end it first).
    pub(crate) async fn spawn(config: &IngestConfig, fail_point: Option<&str>, log: &Path) -> Self {
        Self::spawn_with_env(config, fail_point, log, &[]).await
    }

    /// [`Self::spawn`] with the librdkafka consumer-group debug log on (`LOGBUS_KAFKA_DEBUG=cgrp`,
    /// `librdkafka=debug`): the worker's log then tells its group generations, which member
    /// leads each, and its group coordinator (see `ingest::scale_out` and
    /// `ingest::broker_failover`).
    pub(crate) async fn spawn_with_group_debug(config: &IngestConfig, log: &Path) -> Self {
        let env = [
            ("LOGBUS_KAFKA_DEBUG", "cgrp"),
            ("RUST_LOG", "warn,logbus_ingest=info,librdkafka=debug"),
        ];
        Self::spawn_with_env(config, None, log, &env).await
    }

    /// [`Self::spawn`] with extra environment variables (set last, so they may override
    /// `RUST_LOG`).
    pub(crate) async fn spawn_with_env(
        config: &IngestConfig,
        fail_point: Option<&str>,
        log: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_logbus-ingest-under-test"));
        command
            .args(worker_args(config))
            .env("RUST_LOG", "warn,logbus_ingest=info")
            .env("LOGBUS_LOG_JSON", "1")
            .env_remove("LOGBUS_FAIL_POINT")
            .env_remove("LOGBUS_KAFKA_DEBUG");
        if let Some(point) = fail_point {
            command.env("LOGBUS_FAIL_POINT", point);
        }
        command.envs(env.iter().copied());
        let mut process = Process::spawn("logbus-ingest-under-test", &mut command, log)
            .expect("start the worker");
        let metrics_addr = crate::support::eventually(
            "the worker process to log its metrics address",
            Duration::from_secs(60),
            || {
                let found = logged_metrics_addr(log).map(Some);
                let exited = process.exited().map(|_| None);
                std::future::ready(found.or(exited))
            },
        )
        .await;
        Self {
            process,
            metrics_addr,
        }
    }

    /// `GET <path>` of the worker's endpoint (see [`get`]); `None` before it serves.
    pub(crate) async fn get(&self, path: &str) -> Option<(u16, String)> {
        get(self.metrics_addr?, path).await
    }

    /// Waits until `/readyz` answers 200 (`ready`) or 503, failing if the process exits.
    pub(crate) async fn wait_ready(&mut self, ready: bool, timeout: Duration) {
        let want = if ready { 200 } else { 503 };
        let url = format!(
            "http://{}/readyz",
            self.metrics_addr.expect("the worker serves")
        );
        self.process
            .wait_ready(&format!("worker /readyz = {want}"), timeout, || {
                let request = endpoint_client().get(&url).send();
                async move { request.await.is_ok_and(|r| r.status().as_u16() == want) }
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    pub(crate) fn assert_running(&mut self) {
        self.process
            .check_running()
            .unwrap_or_else(|e| panic!("{e}"));
    }

    pub(crate) fn signal(&self, signal: Signal) {
        self.process.signal(signal).expect("signal the worker");
    }

    pub(crate) async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.process
            .wait_exit(timeout)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub(crate) fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// The worker's log file (JSON lines).
    pub(crate) fn log(&self) -> &Path {
        self.process.log()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The value of `series` in the worker's `/metrics` (see [`scrape`]).
    pub(crate) async fn metric(&self, series: &str) -> Option<f64> {
        scrape(self.metrics_addr?, series).await
    }
}

impl WorkerProcess {
    /// The worker's own metrics lines that tell how it got through a failure: retries, commit
    /// errors, rebalances, replayed batches, duplicates dropped, rows written.
    pub(crate) async fn recovery_metrics(&self) -> String {
        let (_, text) = self.get("/metrics").await.expect("metrics");
        text.lines()
            .filter(|line| {
                !line.starts_with('#')
                    && [
                        "logbus_ingest_retries_total",
                        "logbus_ingest_commit_errors_total",
                        "logbus_ingest_rebalances_total",
                        "logbus_ingest_replayed_batches_total",
                        "logbus_ingest_duplicates_dropped_total",
                        "logbus_ingest_rows_written_total",
                    ]
                    .iter()
                    .any(|name| line.starts_with(name))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The worker recovered by itself: still the same process and ready; then it stops
    /// cleanly on SIGTERM. Returns its [`Self::recovery_metrics`].
    pub(crate) async fn assert_recovered_and_stop(mut self) -> String {
        self.assert_running();
        self.wait_ready(true, Duration::from_secs(60)).await;
        let metrics = self.recovery_metrics().await;
        self.signal(Signal::SIGTERM);
        let status = self.wait_exit(Duration::from_secs(60)).await;
        assert!(
            status.success(),
            "the worker stops cleanly on SIGTERM ({status}):\n{}",
            self.log_tail(40)
        );
        metrics
    }
}

fn logged_metrics_addr(log: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter(|line| line.contains(SERVING))
        .find_map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).ok()?;
            line["fields"]["http_addr"].as_str()?.parse().ok()
        })
}

/// The client for the workers' endpoints: a 2 s timeout, so an endpoint that hangs reads as
/// one that does not answer.
fn endpoint_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("http client")
    })
}

/// `GET http://<addr><path>` of a worker's endpoint: status and body; `None` if it does not
/// answer.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let response = endpoint_client()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// The value of `series` in the `/metrics` of the worker at `addr` (0 when absent); `None` if
/// the worker does not answer.
pub(crate) async fn scrape(addr: SocketAddr, series: &str) -> Option<f64> {
    let (status, text) = get(addr, "/metrics").await?;
    (status == 200).then(|| metric(&text, series))
}

/// A metric's value in a Prometheus text exposition: the sample whose name and labels are
/// exactly `series` (e.g. `logbus_ingest_retries_total{op="insert_logs"}`), 0 when absent.
pub(crate) fn metric(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |value| value.trim().parse().expect("a number"))
}
