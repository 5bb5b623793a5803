//! The services around the worker really stopped mid-stream, not simulated by a proxy:
//!
//! * a private ClickHouse front (`devstack/chfront`, its own data folder and port) is stopped
//!   with SIGTERM, and later with SIGKILL while inserts are in flight, kept down for a few
//!   seconds while events keep arriving, and started again on the same port and data;
//! * a private tansu broker is frozen with SIGSTOP for longer than the flush interval (once
//!   within the consumer session timeout, once beyond it) and resumed with SIGCONT (tansu keeps
//!   everything in memory, so it is paused, never restarted).
//!
//! In every case the worker (a real `logbus-ingest-under-test` process, never restarted) must
//! recover by itself, and every produced event must land exactly once in `logs` and in the
//! `logs_minute` rollup.
//!
//! The private processes are killed by their pid when the test ends, whatever happens.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::support::ingest::{Event, IngestStack, Totals, events, publish_events};
use crate::support::{TestDatabase, eventually, unique_name};
use clickhouse::Client;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::FutureProducer;

// ---------------------------------------------------------------------------------------------
// Locations and small utilities.

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the repository")
        .to_path_buf()
}

/// `LOGBUS_DEVSTACK_DIR` (relative to the repository, as in devstack/common.sh) or `.devstack`.
fn devstack_dir() -> PathBuf {
    match std::env::var_os("LOGBUS_DEVSTACK_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => repo_root().join(dir),
        None => repo_root().join(".devstack"),
    }
}

/// A scratch folder for one test's data and logs; removed at the end unless the test failed
/// or `LOGBUS_TEST_KEEP` is set (then its path is printed).
struct Scratch(PathBuf);

impl Scratch {
    fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir_all(&dir).expect("create scratch folder");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("LOGBUS_TEST_KEEP").is_some() {
            eprintln!("kept for inspection: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A child process owned by the test. Dropping it sends SIGKILL to its pid (and only to it)
/// and reaps it, so no private service outlives its test.
struct Process {
    name: String,
    log: PathBuf,
    child: Child,
}

impl Process {
    fn spawn(name: &str, command: &mut Command, log: &Path) -> Self {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log file");
        let err = out.try_clone().expect("clone log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name} ({command:?}): {e}"));
        eprintln!("{name}: pid {}, log {}", child.id(), log.display());
        Self {
            name: name.to_owned(),
            log: log.to_owned(),
            child,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `KILL`, `STOP`, `CONT`) to this process with the `kill` tool.
    /// The child is not reaped before that, so its pid cannot have been reused.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(
            status.success(),
            "kill -s {signal} {} ({}): {status}",
            self.pid(),
            self.name
        );
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!(
                "{} exited ({status}); log {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 40)
            );
        }
    }

    async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let what = format!("{} (pid {}) to exit", self.name, self.pid());
        let child = &mut self.child;
        eventually(&what, timeout, || {
            std::future::ready(child.try_wait().expect("try_wait"))
        })
        .await
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Works on a stopped (SIGSTOP) process too; a no-op if it already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("http client")
}

// ---------------------------------------------------------------------------------------------
// A private ClickHouse front.

struct ChFront {
    port: u16,
    data: PathBuf,
    log: PathBuf,
    process: Option<Process>,
}

impl ChFront {
    async fn start(scratch: &Scratch) -> Self {
        let mut front = Self {
            port: crate::support::free_port(),
            data: scratch.0.join("clickhouse"),
            log: scratch.0.join("chfront.log"),
            process: None,
        };
        front.spawn().await;
        front
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the front on its port and data folder; returns when `/ping` answers `Ok.`.
    async fn spawn(&mut self) {
        assert!(self.process.is_none(), "chfront is already running");
        let python = devstack_dir().join("venv/bin/python");
        let script = repo_root().join("devstack/chfront/chfront.py");
        assert!(
            python.exists(),
            "{} is missing: install the dev stack with `make install`",
            python.display()
        );
        let mut command = Command::new(&python);
        command
            .arg(&script)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--data")
            .arg(&self.data);
        let mut process = Process::spawn("chfront", &mut command, &self.log);
        let http = http();
        let ping = format!("{}/ping", self.url());
        eventually(
            "the private chfront to answer /ping",
            Duration::from_secs(60),
            || {
                process.assert_running();
                let request = http.get(&ping).send();
                async move {
                    let body = request.await.ok()?.text().await.ok()?;
                    (body.trim() == "Ok.").then_some(())
                }
            },
        )
        .await;
        self.process = Some(process);
    }

    /// Stops the front with `signal` and waits until the process is gone.
    async fn stop(&mut self, signal: &str) -> ExitStatus {
        let mut process = self.process.take().expect("chfront is running");
        process.signal(signal);
        process.wait_exit(Duration::from_secs(30)).await
    }

    fn client(&self) -> Client {
        Client::default().with_url(self.url())
    }
}

// ---------------------------------------------------------------------------------------------
// A private tansu broker.

struct Tansu {
    brokers: String,
    process: Process,
}

impl Tansu {
    async fn start(scratch: &Scratch) -> Self {
        let port = crate::support::free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let binary = devstack_dir().join("bin/tansu");
        assert!(
            binary.exists(),
            "{} is missing: install the dev stack with `make install`",
            binary.display()
        );
        let mut command = Command::new(&binary);
        command
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"]);
        let mut process = Process::spawn("tansu", &mut command, &scratch.0.join("tansu.log"));
        let addr = format!("127.0.0.1:{port}");
        eventually(
            "the private tansu to accept connections",
            Duration::from_secs(30),
            || {
                process.assert_running();
                let connect = tokio::net::TcpStream::connect(addr.clone());
                async move { connect.await.ok().map(drop) }
            },
        )
        .await;
        Self {
            brokers: addr,
            process,
        }
    }

    fn admin(&self) -> AdminClient<DefaultClientContext> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .expect("admin client")
    }

    /// Creates a topic with a unique name; retried until the broker answers (this is the
    /// readiness check of a freshly started broker).
    async fn create_topic(&self, prefix: &str, partitions: i32) -> String {
        let name = unique_name(prefix);
        let admin = self.admin();
        let options = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(5)))
            .request_timeout(Some(Duration::from_secs(5)));
        let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
        eventually(
            &format!("topic {name} created on {}", self.brokers),
            Duration::from_secs(30),
            || async {
                let results = admin.create_topics([&topic], &options).await.ok()?;
                results
                    .into_iter()
                    .all(|result| {
                        matches!(
                            result,
                            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists))
                        )
                    })
                    .then_some(())
            },
        )
        .await;
        name
    }

    fn producer(&self) -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("linger.ms", "20")
            .set("message.timeout.ms", "120000")
            .set("queue.buffering.max.messages", "500000")
            .create()
            .expect("producer")
    }
}

// ---------------------------------------------------------------------------------------------
// The worker under test, as a real process.

struct Worker {
    process: Process,
    port: u16,
}

impl Worker {
    fn spawn(stack: &IngestStack, config: &mut logbus_ingest::IngestConfig, log: &Path) -> Self {
        let port = crate::support::free_port();
        config.http_addr = format!("127.0.0.1:{port}").parse().expect("address");
        let mut command = Command::new(env!("CARGO_BIN_EXE_logbus-ingest-under-test"));
        command
            .args(stack.args(config))
            .env("RUST_LOG", "warn,logbus_ingest=info")
            .env_remove("LOGBUS_FAIL_POINT")
            .env_remove("LOGBUS_LOG_JSON");
        Self {
            process: Process::spawn("logbus-ingest-under-test", &mut command, log),
            port,
        }
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = http()
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    async fn wait_ready(&mut self, ready: bool, timeout: Duration) {
        let want = if ready { 200 } else { 503 };
        let what = format!("worker /readyz = {want}");
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        let http = http();
        let process = &mut self.process;
        eventually(&what, timeout, || {
            process.assert_running();
            let request = http.get(&url).send();
            async move { (request.await.ok()?.status().as_u16() == want).then_some(()) }
        })
        .await;
    }

    /// `logbus_ingest_retries_total{op="<op>"}`: failed ClickHouse calls of that kind.
    async fn retries(&self, op: &str) -> u64 {
        let (_, text) = self.get("/metrics").await.expect("metrics");
        let prefix = format!("logbus_ingest_retries_total{{op=\"{op}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map_or(0, |value| {
                value.trim().parse::<f64>().expect("counter") as u64
            })
    }

    /// The worker's own metrics lines that tell how it got through the outage.
    async fn recovery_metrics(&self) -> String {
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

    /// The worker recovered by itself: still the same process, ready; then it stops cleanly.
    async fn assert_recovered_and_stop(mut self) -> String {
        self.process.assert_running();
        self.wait_ready(true, Duration::from_secs(30)).await;
        let metrics = self.recovery_metrics().await;
        self.process.signal("TERM");
        let status = self.process.wait_exit(Duration::from_secs(60)).await;
        assert!(
            status.success(),
            "the worker stops cleanly on SIGTERM ({status}); log {}:\n{}",
            self.process.log.display(),
            tail(&self.process.log, 40)
        );
        metrics
    }
}

// ---------------------------------------------------------------------------------------------
// Checks.

fn quota_of(events: &[Event]) -> i64 {
    events.iter().map(|e| e.quota).sum()
}

fn assert_exact(totals: Totals, rows: u64, quota: i64) {
    assert_eq!(totals.rows, rows, "raw rows: {totals:?}");
    assert_eq!(totals.distinct_ids, rows, "distinct event ids: {totals:?}");
    assert_eq!(totals.quota, quota, "raw quota: {totals:?}");
    assert_eq!(totals.rollup_requests, rows, "rollup requests: {totals:?}");
    assert_eq!(totals.rollup_quota, quota, "rollup quota: {totals:?}");
}

/// Waits for `rows` rows, lets late (duplicate) writes show up, then checks exactly-once.
async fn assert_exactly_once(stack: &IngestStack, rows: u64, quota: i64) {
    let reached = stack.wait_for_rows(rows, Duration::from_secs(90)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = stack.totals().await;
    assert_exact(reached, rows, quota);
    assert_exact(after, rows, quota);
}

/// Publishes `events` in chunks with a pause between them, as a live stream would arrive.
fn publish_paced(
    producer: FutureProducer,
    topic: &str,
    events: Vec<Event>,
    chunk: usize,
    pause: Duration,
) -> tokio::task::JoinHandle<()> {
    let topic = topic.to_owned();
    tokio::spawn(async move {
        for part in events.chunks(chunk) {
            publish_events(&producer, &topic, part).await;
            tokio::time::sleep(pause).await;
        }
    })
}

fn waves(mut all: Vec<Event>, sizes: &[usize]) -> Vec<Vec<Event>> {
    let mut out = Vec::new();
    for &size in sizes {
        let rest = all.split_off(size);
        out.push(std::mem::replace(&mut all, rest));
    }
    assert!(all.is_empty(), "wave sizes add up to the events");
    out
}

// ---------------------------------------------------------------------------------------------
// 1. The ClickHouse front stopped (SIGTERM, then SIGKILL) and restarted mid-stream.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_front_stopped_and_restarted_mid_stream_loses_nothing_and_duplicates_nothing() {
    crate::support::init_tracing();
    let scratch = Scratch::new("logbus-chfront-restart");
    let mut front = ChFront::start(&scratch).await;

    // Topics and group on the shared broker; the database on the private front.
    let name = unique_name("test");
    logbus_projections::migrate(&front.client(), &name, Default::default())
        .await
        .expect("migrations apply on the private front");
    let db = TestDatabase {
        client: front.client().with_database(&name),
        name,
    };
    let stack = IngestStack {
        db,
        logs_topic: crate::support::create_topic("logs", 4).await,
        identity_topic: crate::support::create_topic("identity", 1).await,
        dlq_topic: crate::support::create_topic("dlq", 1).await,
        group_id: unique_name("ingest"),
        partitions: 4,
    };
    let mut config = stack.config();
    config.clickhouse.url = front.url();
    // Batches of 1,000 rows: while a backlog is drained the worker is nearly always inside a
    // ClickHouse call.
    config.batch_max_rows = 1_000;

    let all = events(61, 20_000);
    let total = all.len() as u64;
    let quota = quota_of(&all);
    let mut waves = waves(all, &[4_000, 4_000, 6_000, 3_000, 3_000]).into_iter();
    let producer = crate::support::ingest::fast_producer();
    publish_events(&producer, &stack.logs_topic, &waves.next().expect("wave")).await;

    let mut worker = Worker::spawn(&stack, &mut config, &scratch.0.join("worker.log"));
    stack.wait_for_rows(1_000, Duration::from_secs(60)).await;

    // Outage 1: SIGTERM (the front finishes its in-flight requests and exits), while the
    // next wave is being published.
    let publishing = publish_paced(
        crate::support::ingest::fast_producer(),
        &stack.logs_topic,
        waves.next().expect("wave"),
        1_000,
        Duration::from_millis(300),
    );
    let before = stack.totals().await;
    let status = front.stop("TERM").await;
    assert!(status.success(), "chfront exits 0 on SIGTERM ({status})");
    eprintln!("chfront stopped with SIGTERM at {before:?}");
    worker.wait_ready(false, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    publishing.await.expect("publisher");
    front.spawn().await;

    // Outage 2: SIGKILL while the worker drains a backlog. The nasty case is an insert into
    // `logs` in flight when the front dies (it may or may not have landed; its response is
    // lost). Whether the kill hit one shows in the worker's metrics: its next failed call is
    // `insert_logs` (intent and filter done, insert sent or about to be). Repeated a few
    // times until it does; every round is a real SIGKILL and restart.
    let resumed = stack
        .wait_for_rows(before.rows + 2_000, Duration::from_secs(60))
        .await;
    eprintln!("after the SIGTERM outage: {resumed:?}");
    // A backlog, so that the worker is busy with full batches, and a live stream on top.
    publish_events(&producer, &stack.logs_topic, &waves.next().expect("wave")).await;
    let publishing = publish_paced(
        crate::support::ingest::fast_producer(),
        &stack.logs_topic,
        waves.next().expect("wave"),
        1_000,
        Duration::from_millis(200),
    );
    let mut mid_insert = false;
    // The kill comes at a different point of the worker's flush cycle each round: a batch
    // just landed, then this much later (intent, filter and insert follow each other).
    let delays_ms = [60, 120, 30, 90, 150, 0, 180, 45, 105, 75];
    for (round, delay_ms) in delays_ms.into_iter().enumerate() {
        let failed_inserts = worker.retries("insert_logs").await;
        let now = stack.totals().await.rows;
        let draining = stack.wait_for_rows(now + 1, Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        front.stop("KILL").await;
        worker.wait_ready(false, Duration::from_secs(15)).await;
        mid_insert = worker.retries("insert_logs").await > failed_inserts;
        eprintln!(
            "chfront killed with SIGKILL (round {}, {delay_ms} ms after a batch landed) at \
             {draining:?}; insert into logs in flight: {mid_insert}",
            round + 1
        );
        tokio::time::sleep(Duration::from_secs(if mid_insert { 3 } else { 1 })).await;
        front.spawn().await;
        if mid_insert {
            break;
        }
    }
    assert!(
        mid_insert,
        "no SIGKILL in {} rounds hit an insert into logs in flight",
        delays_ms.len()
    );
    publishing.await.expect("publisher");

    publish_events(&producer, &stack.logs_topic, &waves.next().expect("wave")).await;
    assert_exactly_once(&stack, total, quota).await;
    let metrics = worker.assert_recovered_and_stop().await;
    eprintln!("worker metrics:\n{metrics}");
    assert!(
        metrics.contains("logbus_ingest_retries_total"),
        "the worker saw the outages"
    );
    drop(front);
}

// ---------------------------------------------------------------------------------------------
// 2. The broker frozen (SIGSTOP) mid-stream and resumed (SIGCONT).

async fn broker_paused_mid_stream(
    prefix: &str,
    session_timeout_ms: u64,
    pause: Duration,
    session_lost: bool,
) {
    crate::support::init_tracing();
    let scratch = Scratch::new(prefix);
    let broker = Tansu::start(&scratch).await;

    // Topics and group on the private broker; the database on the shared ClickHouse.
    let stack = IngestStack {
        logs_topic: broker.create_topic("logs", 4).await,
        identity_topic: broker.create_topic("identity", 1).await,
        dlq_topic: broker.create_topic("dlq", 1).await,
        group_id: unique_name("ingest"),
        partitions: 4,
        db: TestDatabase::migrated().await,
    };
    let mut config = stack.config();
    config.kafka.brokers = broker.brokers.clone();
    config.session_timeout_ms = session_timeout_ms;
    config.batch_max_rows = 1_000;

    let all = events(71, 20_000);
    let total = all.len() as u64;
    let quota = quota_of(&all);
    let mut waves = waves(all, &[6_000, 8_000, 6_000]).into_iter();
    let producer = broker.producer();
    publish_events(&producer, &stack.logs_topic, &waves.next().expect("wave")).await;

    let mut worker = Worker::spawn(&stack, &mut config, &scratch.0.join("worker.log"));
    stack.wait_for_rows(2_000, Duration::from_secs(60)).await;

    // Freeze the broker while the next wave is being published and the worker still drains.
    let publishing = publish_paced(
        broker.producer(),
        &stack.logs_topic,
        waves.next().expect("wave"),
        1_000,
        Duration::from_millis(250),
    );
    stack.wait_for_rows(3_000, Duration::from_secs(60)).await;
    broker.process.signal("STOP");
    let at_stop = stack.totals().await;
    eprintln!("tansu stopped (SIGSTOP) for {pause:?} at {at_stop:?}");
    tokio::time::sleep(pause).await;
    worker.process.assert_running();
    broker.process.signal("CONT");
    eprintln!("tansu resumed (SIGCONT) at {:?}", stack.totals().await);
    publishing.await.expect("publisher");

    publish_events(&producer, &stack.logs_topic, &waves.next().expect("wave")).await;
    assert_exactly_once(&stack, total, quota).await;
    let metrics = worker.assert_recovered_and_stop().await;
    eprintln!("worker metrics:\n{metrics}");
    assert_eq!(
        metrics.contains("logbus_ingest_rebalances_total{event=\"revoke\"}"),
        session_lost,
        "the session expired (partitions revoked) exactly when the pause exceeded it"
    );
    drop(producer);
    drop(broker);
    stack.db.drop_database().await;
}

/// Frozen for 10 s: far longer than the flush interval (200 ms), within the session timeout
/// (20 s), so the worker keeps its partitions; its commits wait for the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_paused_within_the_session_timeout_loses_nothing_and_duplicates_nothing() {
    broker_paused_mid_stream("logbus-tansu-pause", 20_000, Duration::from_secs(10), false).await;
}

/// Frozen for 10 s with a 6 s session timeout: the worker's session expires, it drops its
/// unflushed batches, rejoins and replays the uncommitted tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_paused_beyond_the_session_timeout_loses_nothing_and_duplicates_nothing() {
    broker_paused_mid_stream(
        "logbus-tansu-long-pause",
        6_000,
        Duration::from_secs(10),
        true,
    )
    .await;
}
