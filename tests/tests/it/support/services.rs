//! The logbus services as the tests run them: in-process, bound to port 0 before they serve
//! (the address is known without racing for a free port), stopped through their shutdown
//! future like SIGTERM stops the binaries.

use logbus_query_api::{Config, Server};
use logbus_runtime::ClickHouseArgs;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The ClickHouse settings of the test stack for `database`, from an explicit base (never from
/// the caller's `LOGBUS_*` environment).
pub fn clickhouse_args(database: &str) -> ClickHouseArgs {
    ClickHouseArgs::new(crate::support::clickhouse_url(), database)
}

/// A query-API config on port 0 over `clickhouse`, every other setting at its default.
pub fn api_config(clickhouse: ClickHouseArgs) -> Config {
    Config::new("127.0.0.1:0".parse().expect("address"), clickhouse)
}

/// The query API serving in this process until [`ServedApi::stop`] (or until dropped).
#[derive(Debug)]
pub struct ServedApi {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl ServedApi {
    pub async fn start(config: &Config) -> Self {
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
            task,
        }
    }

    /// Graceful shutdown: open requests finish, then the server returns.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        task.await.expect("the query API stops cleanly");
    }
}

impl Drop for ServedApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}
