//! A TCP proxy inside the test process, to make a server unreachable and reachable again for
//! the process under test without touching the server (which other tests share), and to see
//! how much each connection carried from the server and whether the client closed it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What one proxied connection carried.
#[derive(Debug, Default)]
pub(crate) struct ConnectionStats {
    /// Bytes forwarded from the server to the client.
    pub(crate) down: AtomicU64,
    /// Set once the server-to-client direction ended (either side closed it).
    pub(crate) closed: AtomicBool,
}

/// The proxy: `addr` forwards to the target while up.
#[derive(Debug)]
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// Connections refused while cut.
    pub(crate) refused: Arc<AtomicU64>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    stats: Arc<Mutex<Vec<Arc<ConnectionStats>>>>,
    task: tokio::task::JoinHandle<()>,
}

/// Forwards both directions of one connection, counting what the server sends.
async fn forward(inbound: TcpStream, outbound: TcpStream, stats: &ConnectionStats) {
    let (mut from_client, mut to_client) = inbound.into_split();
    let (mut from_server, mut to_server) = outbound.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
        let _ = to_server.shutdown().await;
    };
    let down = async {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match from_server.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_client.write_all(&buffer[..n]).await.is_err() {
                        break;
                    }
                    stats.down.fetch_add(n as u64, Ordering::SeqCst);
                }
            }
        }
        stats.closed.store(true, Ordering::SeqCst);
        let _ = to_client.shutdown().await;
    };
    tokio::join!(up, down);
}

impl Proxy {
    /// A proxy to the test stack's ClickHouse.
    pub(crate) async fn to_clickhouse() -> Self {
        let target: SocketAddr = crate::support::clickhouse_url()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("LOGBUS_TEST_CLICKHOUSE is http://host:port with an IP host");
        Self::start(target).await
    }

    pub(crate) async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let up = Arc::new(AtomicBool::new(true));
        let refused = Arc::new(AtomicU64::new(0));
        let connections = Arc::new(Mutex::new(Vec::<tokio::task::AbortHandle>::new()));
        let stats = Arc::new(Mutex::new(Vec::<Arc<ConnectionStats>>::new()));
        let task = {
            let (up, refused, connections) = (up.clone(), refused.clone(), connections.clone());
            let all_stats = stats.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((inbound, _)) = listener.accept().await else {
                        continue;
                    };
                    if !up.load(Ordering::SeqCst) {
                        refused.fetch_add(1, Ordering::SeqCst);
                        drop(inbound);
                        continue;
                    }
                    let stats = Arc::new(ConnectionStats::default());
                    all_stats.lock().expect("lock").push(stats.clone());
                    let connection = tokio::spawn(async move {
                        match TcpStream::connect(target).await {
                            Ok(outbound) => forward(inbound, outbound, &stats).await,
                            Err(_) => stats.closed.store(true, Ordering::SeqCst),
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
            stats,
            task,
        }
    }

    /// Each connection so far: (bytes from the server, closed).
    pub(crate) fn connections(&self) -> Vec<(u64, bool)> {
        self.stats
            .lock()
            .expect("lock")
            .iter()
            .map(|s| {
                (
                    s.down.load(Ordering::SeqCst),
                    s.closed.load(Ordering::SeqCst),
                )
            })
            .collect()
    }

    /// Closes every open connection and refuses new ones, as a dead server would.
    pub(crate) fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().expect("lock").drain(..) {
            connection.abort();
        }
    }

    /// Accepts connections again.
    pub(crate) fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}
