//! The query API as a real process (`logbus-query-api-under-test`, the `logbus-query-api`
//! binary built in this crate), for tests that measure its memory: its peak resident set
//! (`VmHWM` in `/proc/<pid>/status`) covers everything the process ever held, so a test can
//! bound it without sampling at the right moment.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use logbus_devstack::Process;

/// What the API logs once it is bound (a JSON line with `LOGBUS_LOG_JSON=1`).
const LISTENING: &str = "logbus-query-api listening";

/// The query API process, listening on a port of its own. Dropping it SIGKILLs it.
#[derive(Debug)]
pub(crate) struct ApiProcess {
    process: Process,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl ApiProcess {
    /// Starts the API over `database` of `clickhouse_url` on port 0 and returns once it
    /// answers `/healthz`.
    pub(crate) async fn spawn(clickhouse_url: &str, database: &str, log: &Path) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_logbus-query-api-under-test"));
        command
            .arg("--listen=127.0.0.1:0")
            .arg(format!("--clickhouse-url={clickhouse_url}"))
            .arg(format!("--clickhouse-database={database}"))
            .env("RUST_LOG", "warn,logbus_query_api=info")
            .env("LOGBUS_LOG_JSON", "1");
        let mut process = Process::spawn("logbus-query-api-under-test", &mut command, log)
            .expect("start the query API");
        let addr = crate::support::eventually(
            "the query API process to log its address",
            Duration::from_secs(60),
            || {
                let found = logged_addr(log);
                if found.is_none() {
                    process
                        .check_running()
                        .unwrap_or_else(|e| panic!("the query API exited: {e}"));
                }
                std::future::ready(found)
            },
        )
        .await;
        let base = format!("http://{addr}");
        let health = format!("{base}/healthz");
        process
            .wait_ready("query API /healthz", Duration::from_secs(60), || {
                let request = reqwest::get(health.clone());
                async move { request.await.is_ok_and(|r| r.status().is_success()) }
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Self { process, base }
    }

    /// The process's peak resident set so far, in bytes (`VmHWM`).
    pub(crate) fn peak_rss(&self) -> u64 {
        status_kib(self.process.pid(), "VmHWM:") * 1024
    }

    /// The process's resident set now, in bytes (`VmRSS`).
    pub(crate) fn rss(&self) -> u64 {
        status_kib(self.process.pid(), "VmRSS:") * 1024
    }

    pub(crate) fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }
}

/// A `kB` line of `/proc/<pid>/status`.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}

fn logged_addr(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter(|line| line.contains(LISTENING))
        .find_map(|line| {
            let line: serde_json::Value = serde_json::from_str(line).ok()?;
            Some(line["fields"]["addr"].as_str()?.to_owned())
        })
}
