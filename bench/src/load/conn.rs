//! One HTTP/1.1 keep-alive connection per load client, opened by hand: a pooled client
//! (reqwest's, hyper-util's) opens a second connection when a request is sent before the
//! previous answer's connection is back in its pool, so 64 such clients held 67 to 100
//! connections in the first run, not 64.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::queries::check_answer;

/// Longest one request may take (the API answers 504 after its own 60 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) struct Conn {
    addr: SocketAddr,
    sender: Option<SendRequest<Empty<Bytes>>>,
    /// Connections opened: 1 unless a transport error made it reconnect.
    pub opened: u32,
}

impl Conn {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Conn {
            addr,
            sender: None,
            opened: 0,
        }
    }

    /// GETs `path` with `headers`, checked by [`check_answer`]. After a transport error the
    /// connection is dropped and the next request opens another.
    pub(crate) async fn get(&mut self, path: &str, headers: &[(&str, String)]) -> Result<()> {
        match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(path, headers)).await {
            Ok(Ok((status, body))) => check_answer(status, &body),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                anyhow::bail!("no answer in {REQUEST_TIMEOUT:?}")
            }
        }
    }

    async fn exchange(&mut self, path: &str, headers: &[(&str, String)]) -> Result<(u16, Bytes)> {
        let addr = self.addr;
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect(addr).await.context("connecting")?;
            stream.set_nodelay(true)?;
            let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            self.opened += 1;
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().context("no connection")?;
        sender.ready().await.context("connection")?;
        let mut request = hyper::Request::get(path).header(hyper::header::HOST, addr.to_string());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let answer = sender
            .send_request(request.body(Empty::new())?)
            .await
            .context("request")?;
        let status = answer.status().as_u16();
        let body = answer.into_body().collect().await.context("body")?;
        Ok((status, body.to_bytes()))
    }
}
