//! ClickHouse unreachable mid-stream and back: no loss, no duplicates, recovered by itself.
//!
//! The outage is simulated with a TCP proxy inside the test: the worker talks to ClickHouse
//! through it; "cut" closes every open connection and refuses new ones (as a dead server
//! would), "restore" accepts again. The shared ClickHouse other tests use is never touched.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::eventually;
use crate::support::ingest::{IngestStack, events, fast_producer, publish_events};
use crate::support::services::InProcessWorker;
use tokio::net::{TcpListener, TcpStream};

struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let up = Arc::new(AtomicBool::new(true));
        let refused = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(Mutex::new(Vec::<tokio::task::AbortHandle>::new()));
        let task = {
            let (up, refused, connections) = (up.clone(), refused.clone(), connections.clone());
            tokio::spawn(async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    if !up.load(Ordering::SeqCst) {
                        refused.fetch_add(1, Ordering::SeqCst);
                        drop(inbound);
                        continue;
                    }
                    let connection = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections
                        .lock()
                        .expect("lock")
                        .push(connection.abort_handle());
                }
            })
        };
        Self {
            addr,
            up,
            refused,
            connections,
            task,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().expect("lock").drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_outage_mid_stream_loses_nothing_and_duplicates_nothing() {
    let stack = IngestStack::new(3).await;
    let target: SocketAddr = crate::support::clickhouse_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("LOGBUS_TEST_CLICKHOUSE is http://host:port with an IP host");
    let proxy = Proxy::start(target).await;
    let mut config = stack.config();
    config.clickhouse.url = format!("http://{}", proxy.addr);
    config.batch_max_rows = 2_000;

    let producer = fast_producer();
    let first = events(41, 10_000);
    let second = events(42, 10_000);
    let quota: i64 = first.iter().chain(&second).map(|e| e.quota).sum();
    publish_events(&producer, &stack.logs_topic, &first).await;

    let worker = InProcessWorker::start(config).await;
    let metrics = worker.metrics_addr();
    stack.wait_for_rows(2_000, Duration::from_secs(120)).await;

    // Outage, while more events arrive.
    proxy.cut();
    publish_events(&producer, &stack.logs_topic, &second).await;
    eventually(
        "the worker retrying against the dead ClickHouse",
        Duration::from_secs(60),
        || async { (proxy.refused.load(Ordering::SeqCst) >= 4).then_some(()) },
    )
    .await;
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("http://{metrics}/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(
        ready.status().as_u16(),
        503,
        "not ready while ClickHouse is down"
    );
    let during = stack.totals().await;
    eprintln!("during the outage: {during:?}");
    assert!(during.rows < 20_000);

    proxy.restore();
    let totals = stack.wait_for_rows(20_000, Duration::from_secs(180)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = stack.totals().await;
    assert_eq!(after, totals);
    assert_eq!(after.rows, 20_000);
    assert_eq!(after.distinct_ids, 20_000);
    assert_eq!(after.quota, quota);
    assert_eq!(after.rollup_requests, 20_000);
    assert_eq!(after.rollup_quota, quota);

    eventually("ready again", Duration::from_secs(30), || async {
        let status = http
            .get(format!("http://{metrics}/readyz"))
            .send()
            .await
            .ok()?
            .status();
        (status.as_u16() == 200).then_some(())
    })
    .await;
    let metrics = http
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    assert!(metrics.contains("logbus_ingest_retries_total"), "{metrics}");
    assert!(metrics.contains("logbus_ingest_rows_written_total"));
    assert!(metrics.contains("logbus_ingest_committed_offset"));

    worker.stop().await.expect("clean stop");
    drop(proxy);
    stack.db.drop_database().await;
}
