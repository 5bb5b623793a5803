//! new-api's web UI sends its session cookie, not an access token. With `--newapi-url` the API
//! asks new-api's `GET /api/user/self` who the cookie belongs to. new-api itself (Go, with an
//! embedded web build) cannot be built here, so a stand-in answers that one endpoint the way
//! new-api does: the user for a known cookie, `success:false` otherwise. What is under test is
//! logbus's side: what it forwards, what it accepts and refuses, and how often it asks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};

use crate::support::api::*;

/// Cookies the stand-in knows: value → (id, username, role, status).
fn sessions() -> HashMap<&'static str, (i64, &'static str, i32, i32)> {
    HashMap::from([
        ("root-session", (ADMIN.id, "root", 100, 1)),
        ("alice-session", (ALICE.id, "alice", 1, 1)),
    ])
}

#[derive(Clone)]
struct StandIn {
    calls: Arc<AtomicUsize>,
    /// Each call's (cookie header, New-Api-User header).
    seen: Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

async fn user_self(State(stand_in): State<StandIn>, headers: HeaderMap) -> (StatusCode, String) {
    stand_in.calls.fetch_add(1, Ordering::SeqCst);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let cookie = header("cookie");
    let claimed = header("new-api-user");
    stand_in
        .seen
        .lock()
        .expect("lock")
        .push((cookie.clone(), claimed.clone()));
    let value = cookie.strip_prefix("session=").unwrap_or_default();
    let Some(&(id, username, role, status)) = sessions().get(value) else {
        // new-api: no session → 401 "未登录".
        return (
            StatusCode::UNAUTHORIZED,
            json!({"success": false, "message": "无权进行此操作，未登录且未提供 access token"})
                .to_string(),
        );
    };
    if claimed != id.to_string() {
        return (
            StatusCode::UNAUTHORIZED,
            json!({"success": false, "message": "无权进行此操作，New-Api-User 与登录用户不匹配"})
                .to_string(),
        );
    }
    let body = json!({"success": true, "message": "", "data": {
        "id": id, "username": username, "display_name": username, "role": role,
        "status": status, "group": "default", "quota": 100, "access_token": null,
    }});
    (StatusCode::OK, body.to_string())
}

/// Stops the stand-in (its idle keep-alive connections too) when sent to.
type Stop = tokio::sync::oneshot::Sender<()>;

async fn serve_stand_in() -> (String, StandIn, Stop, tokio::task::JoinHandle<()>) {
    let stand_in = StandIn {
        calls: Arc::default(),
        seen: Arc::default(),
    };
    let app = axum::Router::new()
        .route("/api/user/self", get(user_self))
        .with_state(stand_in.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
    });
    (base, stand_in, stop, task)
}

async fn with_cookie(api: &Api, path: &str, cookie: &str, user: &str) -> (u16, Value) {
    let cookie = format!("theme=dark; session={cookie}");
    let (status, _, body) = api
        .call(
            reqwest::Method::GET,
            path,
            &[("Cookie", &cookie), ("New-Api-User", user)],
        )
        .await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_api_session_cookies_are_checked_with_new_api() {
    let (newapi, stand_in, stop, task) = serve_stand_in().await;
    let url = newapi.clone();
    let api = Api::start_with(move |config| {
        config.newapi_url = Some(url);
        // Long enough that the repeated calls below are all within one TTL.
        config.identity_cache_ttl_ms = 60_000;
    })
    .await;
    let now = now();
    api.seed(
        &[
            log(now - 30, ALICE),
            log(now - 20, BOB),
            log(now - 10, ALICE),
        ],
        &identities(),
    )
    .await;

    // The admin's session lists every log, as the access token does.
    let (status, body) = with_cookie(&api, "/api/log/?p=1", "root-session", "1").await;
    assert_eq!(
        (status, body["success"].clone()),
        (200, json!(true)),
        "{body}"
    );
    assert_eq!(body["data"]["total"], 3, "{body}");
    // Only the session cookie and New-Api-User went to new-api, not the other cookies.
    assert_eq!(
        stand_in.seen.lock().expect("lock").first(),
        Some(&("session=root-session".to_owned(), "1".to_owned()))
    );

    // A user's session sees only her own rows, and is refused the admin view.
    let (status, body) = with_cookie(&api, "/api/log/self?p=1", "alice-session", "2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["total"], 2, "{body}");
    let (status, body) = with_cookie(&api, "/api/log/", "alice-session", "2").await;
    assert_eq!(
        (status, body["success"].clone()),
        (403, json!(false)),
        "{body}"
    );

    // Repeated calls within the TTL ask new-api once per (cookie, user).
    let before = stand_in.calls.load(Ordering::SeqCst);
    for _ in 0..5 {
        let (status, _) = with_cookie(&api, "/api/log/self/stat", "alice-session", "2").await;
        assert_eq!(status, 200);
    }
    assert_eq!(stand_in.calls.load(Ordering::SeqCst), before);

    // Refused by new-api: an unknown cookie, and a cookie claimed as another user.
    let (status, body) = with_cookie(&api, "/api/log/self", "forged", "2").await;
    assert_eq!(
        (status, body["success"].clone()),
        (401, json!(false)),
        "{body}"
    );
    assert_eq!(body["message"], "无权进行此操作，登录已失效，请重新登录");
    let (status, body) = with_cookie(&api, "/api/log/", "alice-session", "1").await;
    assert_eq!(
        (status, body["success"].clone()),
        (401, json!(false)),
        "{body}"
    );
    // Without New-Api-User the request is refused before new-api is asked, as new-api does.
    let calls = stand_in.calls.load(Ordering::SeqCst);
    let (status, _, body) = api
        .call(
            reqwest::Method::GET,
            "/api/log/self",
            &[("Cookie", "session=alice-session")],
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["message"], "无权进行此操作，未提供 New-Api-User");
    assert_eq!(stand_in.calls.load(Ordering::SeqCst), calls);

    // An access token never calls new-api.
    let calls = stand_in.calls.load(Ordering::SeqCst);
    assert_eq!(api.data("/api/log/self", ALICE).await["total"], 2);
    assert_eq!(stand_in.calls.load(Ordering::SeqCst), calls);

    // new-api down: a new session cannot be verified, 503 in the envelope (and not cached).
    let _ = stop.send(());
    task.await.expect("the stand-in stops");
    let (status, body) = with_cookie(&api, "/api/log/self", "new-session", "2").await;
    assert_eq!(
        (status, body["success"].clone()),
        (503, json!(false)),
        "{body}"
    );
    api.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_newapi_url_a_cookie_is_not_a_credential() {
    let api = Api::start().await;
    let (status, body) = with_cookie(&api, "/api/log/self", "alice-session", "2").await;
    assert_eq!(
        (status, body["success"].clone()),
        (401, json!(false)),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "无权进行此操作，未登录且未提供 access token"
    );
    api.finish().await;
}
