//! What a client may cost the API (issue 15 item 4): a request head sent slowly is cut off,
//! oversized heads and overload are answered in the envelope, a request that cannot finish is
//! answered 504. A hanging "new-api" (a listener that never answers) makes a request slow on
//! purpose: the session check waits on it.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::api::*;

/// A loopback listener that accepts connections and never answers: its base URL, and a
/// channel that gets a message per connection accepted.
async fn hanging_newapi() -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (accepted, connections) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
            let _ = accepted.send(());
        }
    });
    (base, connections, task)
}

async fn cookie_request(api: &Api) -> (u16, Value) {
    let (status, _, body) = api
        .call(
            reqwest::Method::GET,
            "/api/log/self",
            &[("Cookie", "session=slow"), ("New-Api-User", "2")],
        )
        .await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_oversized_heads_and_overload_get_bounded_answers() {
    let (newapi, mut asked, hang) = hanging_newapi().await;
    let api = Api::start_with(move |config| {
        config.newapi_url = Some(newapi);
        config.newapi_timeout_ms = 4_000;
        config.limits.header_read_timeout_secs = 1;
        config.limits.max_concurrent_requests = 1;
        config.limits.request_timeout_secs = 2;
    })
    .await;

    // A head that never completes: the server closes the connection (the timeout is 1 s; the
    // 20 s here only bounds the test).
    let address = api.base.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut buf)).await;
    assert!(
        closed.is_ok(),
        "the connection of a head never finished stays open"
    );

    // Oversized heads: the envelope, not an empty body.
    let long = format!("/api/log/?username={}", "a".repeat(20_000));
    let (status, _, body) = api.call(reqwest::Method::GET, &long, &[]).await;
    assert_eq!(status, 414, "{body}");
    assert_eq!(body["success"], false);
    let big = "b".repeat(100_000);
    let (status, _, body) = api
        .call(reqwest::Method::GET, "/healthz", &[("X-Big", &big)])
        .await;
    assert_eq!(status, 431, "{body}");
    assert_eq!(body, json!({"success": false, "message": "请求头过大"}));

    // One request slot, held by a request waiting on the hanging new-api: the next is 503 at
    // once, and the held one ends 504 at the request timeout (2 s, before new-api's 4 s).
    let held = {
        let http = api.http.clone();
        let url = format!("{}/api/log/self", api.base);
        tokio::spawn(async move {
            let response = http
                .get(url)
                .header("Cookie", "session=slow")
                .header("New-Api-User", "2")
                .send()
                .await
                .expect("sent");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("json"))
        })
    };
    // The held request is inside the handler once it has reached new-api.
    asked.recv().await.expect("the held request asks new-api");
    let (status, body) = api.get("/healthz", None).await;
    assert_eq!(
        (status, body),
        (
            503,
            json!({"success": false, "message": "服务器繁忙，请稍后重试"})
        ),
        "a second request while the only slot is taken"
    );
    let (status, body) = held.await.expect("the held request ends");
    assert_eq!(
        (status, body),
        (504, json!({"success": false, "message": "请求处理超时"}))
    );
    // The slot is free again.
    let (status, body) = cookie_request(&api).await;
    assert_eq!(status, 504, "{body}");

    hang.abort();
    api.finish().await;
}
