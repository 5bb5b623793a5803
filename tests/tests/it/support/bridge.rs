//! The bridge as the tests run it: a configuration over one test's topics from an explicit
//! base ([`bridge_config`]), and the `logbus-bridge` binary as a real process
//! ([`BridgeProcess`], `logbus-bridge-under-test`) for the tests that SIGKILL or SIGTERM it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use logbus_bridge::BridgeConfig;
use logbus_devstack::Process;
use logbus_runtime::{KafkaArgs, Secret};
use nix::sys::signal::Signal;

use crate::support::ingest::IngestStack;

/// The bridge over `stack`'s topics reading `dsn`, with its checkpoint at `checkpoint`, and
/// the short intervals tests want; every other setting at its default.
pub(crate) fn bridge_config(dsn: &str, stack: &IngestStack, checkpoint: PathBuf) -> BridgeConfig {
    let kafka = KafkaArgs {
        brokers: crate::support::kafka_brokers(),
        logs_topic: stack.logs_topic.clone(),
        identity_topic: stack.identity_topic.clone(),
    };
    let mut config = BridgeConfig::new(dsn, kafka, checkpoint);
    config.poll_interval_ms = 200;
    config.identity_poll_interval_ms = 500;
    config.progress_interval_secs = 1;
    config
}

/// `config` as the binary's command line: every setting explicit (never the caller's
/// environment), except the DSNs, which go in the environment as an operator's would
/// (they hold passwords).
fn bridge_command(mode: &str, config: &BridgeConfig) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_logbus-bridge-under-test"));
    command
        .arg(mode)
        .arg(format!("--sqlite-path={}", config.sqlite_path))
        .arg(format!("--brokers={}", config.kafka.brokers))
        .arg(format!("--logs-topic={}", config.kafka.logs_topic))
        .arg(format!("--identity-topic={}", config.kafka.identity_topic))
        .arg(format!("--namespace={}", config.namespace))
        .arg(format!("--checkpoint={}", config.checkpoint.display()))
        .arg(format!("--batch-size={}", config.batch_size))
        .arg(format!("--poll-interval-ms={}", config.poll_interval_ms))
        .arg(format!(
            "--identity-poll-interval-ms={}",
            config.identity_poll_interval_ms
        ))
        .arg(format!(
            "--late-row-window-secs={}",
            config.late_row_window_secs
        ))
        .arg(format!("--max-rows-per-sec={}", config.max_rows_per_sec))
        .arg(format!(
            "--progress-interval-secs={}",
            config.progress_interval_secs
        ))
        .env("RUST_LOG", "info")
        .env_remove("LOGBUS_BRIDGE_LOG_SQL_DSN")
        .env(
            "LOGBUS_BRIDGE_SQL_DSN",
            config.sql_dsn.as_ref().map_or("", Secret::expose),
        );
    if let Some(dsn) = &config.log_sql_dsn {
        command.env("LOGBUS_BRIDGE_LOG_SQL_DSN", dsn.expose());
    }
    command
}

/// `logbus-bridge backfill|run` as a process; dropping it SIGKILLs it.
#[derive(Debug)]
pub(crate) struct BridgeProcess {
    process: Process,
}

impl BridgeProcess {
    pub(crate) fn spawn(mode: &str, config: &BridgeConfig, log: &Path) -> Self {
        let process = Process::spawn(
            "logbus-bridge-under-test",
            &mut bridge_command(mode, config),
            log,
        )
        .expect("start the bridge");
        Self { process }
    }

    pub(crate) fn signal(&self, signal: Signal) {
        self.process.signal(signal).expect("signal the bridge");
    }

    /// Polls `ready` until it holds, failing early if the bridge exits.
    pub(crate) async fn wait_until<F, Fut>(&mut self, what: &str, timeout: Duration, ready: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        self.process
            .wait_ready(what, timeout, ready)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }

    pub(crate) fn assert_running(&mut self) {
        self.process
            .check_running()
            .unwrap_or_else(|e| panic!("{e}"));
    }

    pub(crate) async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.process
            .wait_exit(timeout)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits for the process to end by itself (a backfill) and asserts it succeeded.
    pub(crate) async fn assert_succeeds(mut self, timeout: Duration) -> String {
        let status = self.wait_exit(timeout).await;
        let tail = self.process.log_tail(20);
        assert!(status.success(), "the bridge exits 0 ({status}):\n{tail}");
        tail
    }

    /// SIGTERM, and asserts a clean exit; returns the tail of its log (the summary).
    pub(crate) async fn stop(self) -> String {
        self.signal(Signal::SIGTERM);
        self.assert_succeeds(Duration::from_secs(60)).await
    }
}
