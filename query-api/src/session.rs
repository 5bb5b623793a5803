//! new-api's web UI signs in with a session cookie, not an access token. The cookie is signed
//! with new-api's `SESSION_SECRET` and holds Go-encoded values, so logbus does not read it: with
//! `--newapi-url` set, it asks new-api who the session belongs to (`GET /api/user/self` with
//! only that cookie and `New-Api-User`) and caches the answer per cookie hash for the identity
//! TTL (docs/adopting.md). Parsing the cookie and new-api's answer is pure, below.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use logbus_projections::rows::UserRow;
use moka::future::Cache;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The cookie gin-contrib/sessions sets for new-api.
pub const SESSION_COOKIE: &str = "session";
/// new-api requires it beside the cookie too (the same name as `auth::NEW_API_USER`, which
/// imports this module).
const NEW_API_USER: &str = "New-Api-User";

/// The value of the `session` cookie, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE && !c.value().is_empty())
        .map(|c| c.value().to_owned())
}

/// Why new-api did not vouch for a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// new-api answered that the session is not valid (logged out, expired, banned, forged).
    #[error("new-api refused the session: {0}")]
    Refused(String),
    /// new-api could not be asked, or answered something that is not its envelope.
    #[error("new-api could not verify the session: {0}")]
    Unavailable(String),
}

#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    message: String,
    data: Option<SelfUser>,
}

#[derive(Debug, Deserialize)]
struct SelfUser {
    id: i64,
    #[serde(default)]
    username: String,
    role: i32,
    status: i32,
    #[serde(default)]
    group: String,
}

/// The user of new-api's `/api/user/self` answer (`status` is new-api's HTTP status).
pub fn parse_self_answer(status: u16, body: &[u8]) -> Result<UserRow, SessionError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| {
        SessionError::Unavailable(format!("HTTP {status}, not new-api's envelope: {e}"))
    })?;
    match envelope {
        Envelope {
            success: true,
            data: Some(user),
            ..
        } => Ok(UserRow {
            id: user.id,
            username: user.username,
            role: user.role,
            status: user.status,
            group: user.group,
            access_token_sha256: String::new(),
            version: 0,
        }),
        Envelope { success: true, .. } => Err(SessionError::Unavailable(format!(
            "HTTP {status}, success without a user"
        ))),
        Envelope { message, .. } => Err(SessionError::Refused(message)),
    }
}

/// `--newapi-url` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("--newapi-url {0:?} is not an http:// or https:// URL")]
    Url(String),
    #[error("cannot build the HTTP client for new-api: {0}")]
    Client(reqwest::Error),
}

type Verdict = Result<Arc<UserRow>, SessionError>;

/// Asks new-api about session cookies; answers are cached for the identity TTL.
#[derive(Debug, Clone)]
pub struct NewApiSessions {
    http: reqwest::Client,
    self_url: String,
    cache: Option<Cache<String, Verdict>>,
}

impl NewApiSessions {
    /// `base_url`: new-api as this process reaches it (`http://new-api:3000`).
    pub fn new(base_url: &str, timeout: Duration, ttl: Duration) -> Result<Self, SetupError> {
        let self_url = format!("{}/api/user/self", base_url.trim_end_matches('/'));
        match reqwest::Url::parse(&self_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => return Err(SetupError::Url(base_url.to_owned())),
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(SetupError::Client)?;
        Ok(Self {
            http,
            self_url,
            cache: (!ttl.is_zero()).then(|| {
                Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(ttl)
                    .build()
            }),
        })
    }

    /// Who the session `cookie` claimed as user `claimed` belongs to, according to new-api.
    pub async fn user(&self, cookie: &str, claimed: i64) -> Verdict {
        let ask = self.ask(cookie, claimed);
        let Some(cache) = &self.cache else {
            return ask.await;
        };
        let key = hex::encode(Sha256::digest(format!("{claimed}\n{cookie}")));
        let verdict = cache.get_with(key.clone(), ask).await;
        if matches!(verdict, Err(SessionError::Unavailable(_))) {
            // An outage is not an answer about the session: ask again next time.
            cache.invalidate(&key).await;
        }
        verdict
    }

    async fn ask(&self, cookie: &str, claimed: i64) -> Verdict {
        let response = self
            .http
            .get(&self.self_url)
            .header(COOKIE, format!("{SESSION_COOKIE}={cookie}"))
            .header(NEW_API_USER, claimed.to_string())
            .send()
            .await
            .map_err(|e| SessionError::Unavailable(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| SessionError::Unavailable(e.without_url().to_string()))?;
        parse_self_answer(status, &body).map(Arc::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn finds_the_session_cookie_among_others() {
        let mut headers = HeaderMap::new();
        assert_eq!(session_cookie(&headers), None);
        headers.append(COOKIE, HeaderValue::from_static("theme=dark; lang=zh"));
        assert_eq!(session_cookie(&headers), None);
        headers.append(
            COOKIE,
            HeaderValue::from_static("a=1; session=MTcz-x_y==; b=2"),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("MTcz-x_y=="));
        let mut empty = HeaderMap::new();
        empty.insert(COOKIE, HeaderValue::from_static("session="));
        assert_eq!(session_cookie(&empty), None);
    }

    #[test]
    fn the_url_must_be_http() {
        let second = Duration::from_secs(1);
        assert!(NewApiSessions::new("http://new-api:3000/", second, second).is_ok());
        assert!(matches!(
            NewApiSessions::new("new-api:3000", second, second),
            Err(SetupError::Url(_))
        ));
        assert!(matches!(
            NewApiSessions::new("ftp://x", second, second),
            Err(SetupError::Url(_))
        ));
    }

    #[test]
    fn new_apis_answers() {
        let ok = br#"{"success":true,"message":"","data":{"id":7,"username":"amy","display_name":"Amy","role":10,"status":1,"group":"vip","quota":5}}"#;
        let user = parse_self_answer(200, ok).expect("a user");
        assert_eq!(
            (user.id, user.username.as_str(), user.role, user.status),
            (7, "amy", 10, 1)
        );
        assert_eq!(user.group, "vip");
        let banned = r#"{"success":false,"message":"用户已被封禁"}"#;
        assert_eq!(
            parse_self_answer(200, banned.as_bytes()),
            Err(SessionError::Refused("用户已被封禁".into()))
        );
        let unauthorized = br#"{"success":false,"message":"no session"}"#;
        assert!(matches!(
            parse_self_answer(401, unauthorized),
            Err(SessionError::Refused(_))
        ));
        assert!(matches!(
            parse_self_answer(502, b"<html>bad gateway</html>"),
            Err(SessionError::Unavailable(_))
        ));
        assert!(matches!(
            parse_self_answer(200, br#"{"success":true}"#),
            Err(SessionError::Unavailable(_))
        ));
    }
}
