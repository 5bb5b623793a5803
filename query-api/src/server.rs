//! Binding and serving, kept apart so that the address is known before serving: tests bind
//! port 0 and read [`Server::local_addr`] instead of racing for a free port.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::routes::app;
use crate::state::AppState;

/// The API bound to its listening socket, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
}

impl Server {
    /// Binds `config.listen` and builds the router over [`AppState::new`] (which connects
    /// lazily: a ClickHouse that is down fails requests, not the start).
    pub async fn bind(config: &Config) -> std::io::Result<Server> {
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        tracing::info!(addr = %local_addr, ?config, "logbus-query-api listening");
        Ok(Server {
            listener,
            local_addr,
            router: app(AppState::new(config).map_err(std::io::Error::other)?),
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
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await?;
        tracing::info!("logbus-query-api stopped");
        Ok(())
    }
}
