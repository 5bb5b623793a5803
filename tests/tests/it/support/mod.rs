//! Test helpers shared by the integration tests: where the real broker and ClickHouse are,
//! and per-test databases and topics so that tests never see each other's data.
//!
//! The stack is started by `make test` (or `make up`); the addresses come from
//! `LOGBUS_TEST_KAFKA` and `LOGBUS_TEST_CLICKHOUSE`.

pub(crate) mod api;
pub(crate) mod api_process;
pub(crate) mod bridge;
pub(crate) mod ingest;
pub(crate) mod newapi;
pub(crate) mod proxy;
pub(crate) mod services;

use std::future::Future;
use std::time::{Duration, Instant};

use clickhouse::Client;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord};

pub(crate) fn kafka_brokers() -> String {
    std::env::var("LOGBUS_TEST_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub(crate) fn clickhouse_url() -> String {
    std::env::var("LOGBUS_TEST_CLICKHOUSE").unwrap_or_else(|_| "http://127.0.0.1:8123".into())
}

/// A name no other test (or earlier run) uses, that says which test made it:
/// `prefix_<test>_<12 hex>`, where `<test>` is the last segment of the running test's name
/// (the test harness names each test's thread after the test). Databases and topics get such
/// names, so a database a failing test kept can be traced to its test.
pub(crate) fn unique_name(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}_{}", current_test_name(), &id[..12])
}

/// The running test's function name, reduced to what a database name may hold (at most 40
/// ASCII letters, digits and `_`); `task` off the test's own thread (inside a spawned task).
fn current_test_name() -> String {
    let thread = std::thread::current();
    let test = thread
        .name()
        .filter(|name| *name != "main" && !name.starts_with("tokio-"))
        .and_then(|name| name.rsplit("::").next())
        .unwrap_or("task");
    test.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(40)
        .collect()
}

/// Held by each test that runs services as processes of their own (brokers, ClickHouse fronts,
/// worker processes): they run one at a time, so that on a 2-core machine they never compete
/// with each other for CPU and their timeouts stay meaningful. The other tests run alongside.
pub(crate) async fn heavy_test() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

/// A scratch folder for one test's data and logs, named after the test; removed at the end
/// unless the test failed or `LOGBUS_TEST_KEEP` is set (then its path is printed).
#[derive(Debug)]
pub(crate) struct Scratch(std::path::PathBuf);

impl Scratch {
    pub(crate) fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(unique_name(prefix));
        std::fs::create_dir_all(&dir).expect("create scratch folder");
        Self(dir)
    }

    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
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

/// A loopback port free at the time of the call (for a server or proxy a test starts).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// Tracing for a test: `RUST_LOG` or `warn`, through the harness's output capture.
pub(crate) fn init_tracing() {
    logbus_runtime::telemetry::init_for_tests();
}

/// A ClickHouse client with no database selected, checked to be reachable.
pub(crate) async fn clickhouse_client() -> Client {
    let client = Client::default().with_url(clickhouse_url());
    let ping = client.query("SELECT 1").fetch_one::<u8>().await;
    assert!(
        ping.is_ok(),
        "ClickHouse is not reachable at {} ({ping:?}): start the stack with `make up`",
        clickhouse_url()
    );
    client
}

/// A fresh database with the logbus schema applied.
pub(crate) struct TestDatabase {
    pub name: String,
    /// A client whose default database is this one.
    pub client: Client,
}

/// A failing test keeps its database for inspection (only a passing test drops it); databases
/// of earlier runs whose schema is older than this are dropped when a test binary creates its
/// first database, so a dev stack does not collect them forever.
const STALE_TEST_DATABASE_HOURS: u32 = 6;

async fn drop_database_named(root: &Client, name: &str) -> clickhouse::error::Result<()> {
    root.query(&format!("DROP DATABASE IF EXISTS `{name}`"))
        .execute()
        .await
}

async fn drop_stale_test_databases(root: &Client) {
    static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    SWEPT
        .get_or_init(|| async {
            let stale = root
                .query(
                    "SELECT database FROM system.tables
                     WHERE startsWith(database, 'test_')
                     GROUP BY database
                     HAVING max(metadata_modification_time) < now() - toIntervalHour(?)",
                )
                .bind(STALE_TEST_DATABASE_HOURS)
                .fetch_all::<String>()
                .await
                .unwrap_or_default();
            for database in stale {
                // Best effort: a database another run drops meanwhile is no failure.
                let _ = drop_database_named(root, &database).await;
            }
        })
        .await;
}

impl TestDatabase {
    pub(crate) async fn migrated() -> Self {
        let name = unique_name("test");
        let root = clickhouse_client().await;
        drop_stale_test_databases(&root).await;
        logbus_projections::migrate(&root, &name, Default::default())
            .await
            .expect("migrations apply to a new database");
        Self {
            client: root.with_database(&name),
            name,
        }
    }

    pub(crate) async fn count(&self, sql: &str) -> u64 {
        self.client
            .query(sql)
            .fetch_one::<u64>()
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub(crate) async fn drop_database(self) {
        drop_database_named(&clickhouse_client().await, &self.name)
            .await
            .expect("drop test database");
    }
}

pub(crate) fn admin_client(brokers: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client")
}

/// Creates a topic with a unique name and `partitions` partitions on the test stack's broker,
/// and returns its name.
pub(crate) async fn create_topic(prefix: &str, partitions: i32) -> String {
    create_topic_on(&kafka_brokers(), prefix, partitions, 1).await
}

/// Creates a topic with a unique name on `brokers` (a private broker or cluster), retried
/// until the brokers answer: this is also the readiness check of freshly started brokers.
pub(crate) async fn create_topic_on(
    brokers: &str,
    prefix: &str,
    partitions: i32,
    replication: i32,
) -> String {
    create_topic_with(
        brokers,
        prefix,
        partitions,
        TopicReplication::Fixed(replication),
    )
    .await
}

/// [`create_topic_on`] with any replication: `TopicReplication::Variable` gives each
/// partition its replicas, the first being its preferred leader.
pub(crate) async fn create_topic_with(
    brokers: &str,
    prefix: &str,
    partitions: i32,
    replication: TopicReplication<'_>,
) -> String {
    let name = unique_name(prefix);
    let admin = admin_client(brokers);
    let options = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)));
    let topic = NewTopic::new(&name, partitions, replication);
    eventually(
        &format!("topic {name} created on {brokers} (is the stack up? `make up`)"),
        Duration::from_secs(60),
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

/// Deletes `topics` from the test stack's broker: a passing test removes what it made, since
/// the broker keeps every topic across restarts. Best effort: a failing test keeps its topics
/// (like its database), and a topic already gone is no failure.
pub(crate) async fn delete_topics(topics: &[&str]) {
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let _ = admin_client(&kafka_brokers())
        .delete_topics(topics, &options)
        .await;
}

pub(crate) fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer")
}

/// Publishes `payloads` (key, value) and waits until the broker acknowledged each.
pub(crate) async fn publish<K, V>(producer: &FutureProducer, topic: &str, payloads: &[(K, V)])
where
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
{
    let sends = payloads.iter().map(|(key, value)| {
        producer.send(
            FutureRecord::to(topic)
                .key(key.as_ref())
                .payload(value.as_ref()),
            Duration::from_secs(30),
        )
    });
    for outcome in futures::future::join_all(sends).await {
        outcome.unwrap_or_else(|(e, _)| panic!("publish to {topic}: {e}"));
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
/// This is the readiness check that replaces fixed sleeps in tests.
pub(crate) async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
