//! Binding and serving, kept apart so that the address is known before serving: tests bind
//! port 0 and read [`Server::local_addr`] instead of racing for a free port.
//!
//! Serving is hyper's own connection loop rather than `axum::serve`, because axum's gives no
//! header-read timeout and no connection cap ([`crate::limits`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::config::Config;
use crate::limits::Limits;
use crate::routes::app;
use crate::state::AppState;
use crate::tail::Tail;

/// The API bound to its listening socket, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
    limits: Limits,
    tail: Tail,
}

impl Server {
    /// Binds `config.listen` and builds the router over [`AppState::new`] (which connects
    /// lazily: a ClickHouse that is down fails requests, not the start).
    pub async fn bind(config: &Config) -> std::io::Result<Server> {
        let state = AppState::new(config).map_err(std::io::Error::other)?;
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        tracing::info!(addr = %local_addr, ?config, "logbus-query-api listening");
        Ok(Server {
            listener,
            local_addr,
            tail: state.tail().clone(),
            router: app(state, &config.limits),
            limits: config.limits.clone(),
        })
    }

    /// The bound address (the real port when `listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then drains the open requests.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout());
        let builder = Arc::new(builder);
        let connections = Arc::new(Semaphore::new(self.limits.max_connections.max(1)));
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            // A connection slot first: beyond the cap, clients wait in the listen backlog.
            let permit = tokio::select! {
                permit = connections.clone().acquire_owned() => permit.expect("never closed"),
                () = &mut shutdown => break,
            };
            let (stream, remote) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: the listener itself is fine.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let service = self.router.clone().map_request(
                move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(remote));
                    request
                },
            );
            let builder = builder.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let connection = builder.serve_connection_with_upgrades(
                    TokioIo::new(stream),
                    TowerToHyperService::new(service),
                );
                if let Err(error) = watcher.watch(connection).await {
                    tracing::debug!(%error, %remote, "connection ended with an error");
                }
                drop(permit);
            });
        }
        drop(self.listener);
        // Live tails never end by themselves: ended here, their clients reconnect elsewhere.
        self.tail.close();
        graceful.shutdown().await;
        tracing::info!("logbus-query-api stopped");
        Ok(())
    }
}
