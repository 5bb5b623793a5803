//! Authentication of the user and admin endpoints, new-api style: an access token in
//! `Authorization` (optionally `Bearer `) plus the user id in `New-Api-User`; or, with
//! `--newapi-url`, new-api's own session cookie, vouched for by new-api ([`crate::session`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use logbus_projections::identity::hash_access_token;
use logbus_projections::rows::UserRow;
use logbus_projections::rows::identity_codes::{ROLE_ADMIN, ROLE_USER, STATUS_ENABLED};

use crate::auth_throttle::ClientKey;
use crate::error::{ApiError, Failure};
use crate::session::session_cookie;
use crate::state::AppState;

pub const NEW_API_USER: &str = "New-Api-User";

/// The credential of `Authorization`, without an optional `Bearer ` prefix; an unreadable
/// (non-ASCII) header is an invalid access token.
pub fn bearer(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::InvalidAccessToken)?
        .trim();
    let token = match value.split_once(char::is_whitespace) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ if value.eq_ignore_ascii_case("bearer") => "",
        _ => value,
    };
    Ok((!token.is_empty()).then(|| token.to_owned()))
}

/// Whether `error` is a credential that failed (and so counts against the client's budget of
/// failures): not a missing header, nor a valid credential whose role or status is too low.
fn is_failed_credential(error: &ApiError) -> bool {
    matches!(
        error,
        ApiError::InvalidAccessToken
            | ApiError::UserMismatch
            | ApiError::TokenNotFound
            | ApiError::Session(crate::session::SessionError::Refused(_))
    )
}

/// The throttled client of a request (by `--client-address-header` or its peer).
#[derive(Debug, Clone, Copy)]
pub struct Client(pub ClientKey);

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0);
        Ok(Client(state.throttle().client(&parts.headers, peer)))
    }
}

/// Runs `check` of a credential presented by `client`: refused at once while the client is
/// over its budget of failures, and a failure counted against it.
pub async fn throttled<T>(
    state: &AppState,
    client: ClientKey,
    check: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    state.throttle().check(client).await?;
    match check.await {
        Err(error) if is_failed_credential(&error) => {
            Err(state.throttle().failed(client, error).await)
        }
        other => other,
    }
}

async fn authenticate(
    parts: &mut Parts,
    state: &AppState,
    min_role: i32,
) -> Result<Arc<UserRow>, ApiError> {
    let token = bearer(&parts.headers)?;
    let cookie = match (&token, state.sessions()) {
        (None, Some(_)) => session_cookie(&parts.headers),
        _ => None,
    };
    if token.is_none() && cookie.is_none() {
        return Err(ApiError::NoAccessToken);
    }
    let claimed: i64 = parts
        .headers
        .get(NEW_API_USER)
        .ok_or(ApiError::MissingUserHeader)?
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or(ApiError::MalformedUserHeader)?;
    let Client(client) = Client::from_request_parts(parts, state).await?;
    let user = throttled(state, client, async {
        let user = match (token, cookie, state.sessions()) {
            (Some(token), _, _) => state
                .identity()
                .user(&hash_access_token(&token))
                .await
                .map_err(ApiError::db(Failure::Identity))?
                .ok_or(ApiError::InvalidAccessToken)?,
            (None, Some(cookie), Some(sessions)) => sessions.user(&cookie, claimed).await?,
            _ => return Err(ApiError::NoAccessToken),
        };
        if user.id != claimed {
            return Err(ApiError::UserMismatch);
        }
        Ok(user)
    })
    .await?;
    if user.status != STATUS_ENABLED {
        return Err(ApiError::UserDisabled);
    }
    if user.role < min_role {
        return Err(ApiError::Forbidden);
    }
    Ok(user)
}

/// A caller with role >= 1 (user).
#[derive(Debug)]
pub struct UserAuth(pub Arc<UserRow>);

/// A caller with role >= 10 (admin).
#[derive(Debug)]
pub struct AdminAuth(pub Arc<UserRow>);

impl FromRequestParts<AppState> for UserAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(parts, state, ROLE_USER).await.map(UserAuth)
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(parts, state, ROLE_ADMIN).await.map(AdminAuth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_prefix_is_optional() {
        let mut headers = HeaderMap::new();
        assert!(matches!(bearer(&headers), Ok(None)));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer abc"));
        assert_eq!(bearer(&headers).ok().flatten().as_deref(), Some("abc"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("abc"));
        assert_eq!(bearer(&headers).ok().flatten().as_deref(), Some("abc"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer  "));
        assert!(matches!(bearer(&headers), Ok(None)));
    }
}
