//! What one client, or all of them, may cost the API: how long a request head may take to
//! arrive, how many connections are open and requests run at once, how long a request may take
//! to answer, how large its request line and headers are. Overload and oversize are answered
//! in the envelope (503, 504, 414, 431) like every other failure; the flags are documented in
//! docs/api.md.

use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;

use crate::error::ApiError;

pub const DEFAULT_HEADER_READ_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 256;
pub const DEFAULT_MAX_URI_BYTES: usize = 8 * 1024;
pub const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;

/// The limits' flags.
#[derive(Clone, Debug, clap::Args)]
pub struct Limits {
    /// Longest a client may take to send a request's line and headers before the connection
    /// is closed (slow-loris clients hold no connection longer).
    #[arg(long, env = "LOGBUS_API_HEADER_READ_TIMEOUT_SECS", default_value_t = DEFAULT_HEADER_READ_TIMEOUT_SECS)]
    pub header_read_timeout_secs: u64,
    /// Longest a request may take until its response starts (then 504). A streamed export's
    /// body is not cut by it.
    #[arg(long, env = "LOGBUS_API_REQUEST_TIMEOUT_SECS", default_value_t = DEFAULT_REQUEST_TIMEOUT_SECS)]
    pub request_timeout_secs: u64,
    /// Most connections open at once; further clients wait in the listen backlog.
    #[arg(long, env = "LOGBUS_API_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Most requests handled at once; more are answered 503 at once instead of queueing.
    #[arg(long, env = "LOGBUS_API_MAX_CONCURRENT_REQUESTS", default_value_t = DEFAULT_MAX_CONCURRENT_REQUESTS)]
    pub max_concurrent_requests: usize,
    /// Longest request target (path and query string), in bytes (then 414).
    #[arg(long, env = "LOGBUS_API_MAX_URI_BYTES", default_value_t = DEFAULT_MAX_URI_BYTES)]
    pub max_uri_bytes: usize,
    /// Most bytes of request headers, names and values together (then 431).
    #[arg(long, env = "LOGBUS_API_MAX_HEADER_BYTES", default_value_t = DEFAULT_MAX_HEADER_BYTES)]
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout_secs: DEFAULT_HEADER_READ_TIMEOUT_SECS,
            request_timeout_secs: DEFAULT_REQUEST_TIMEOUT_SECS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
            max_uri_bytes: DEFAULT_MAX_URI_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

impl Limits {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs.max(1))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs.max(1))
    }

    /// The head's problem, if its target or headers are over the limits.
    pub fn head_problem(&self, uri_bytes: usize, headers: &HeaderMap) -> Option<ApiError> {
        if uri_bytes > self.max_uri_bytes {
            return Some(ApiError::UriTooLong);
        }
        let header_bytes: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        (header_bytes > self.max_header_bytes).then_some(ApiError::HeadersTooLarge)
    }

    /// `router` under the request limits (inside the error-language scope, so that overload
    /// messages follow `Accept-Language` too).
    pub fn apply<S: Clone + Send + Sync + 'static>(&self, router: Router<S>) -> Router<S> {
        let limits = self.clone();
        router
            .layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(overload_response))
                    .load_shed()
                    // One semaphore for every route (a plain concurrency limit is per route).
                    .layer(GlobalConcurrencyLimitLayer::new(
                        self.max_concurrent_requests.max(1),
                    ))
                    .timeout(self.request_timeout()),
            )
            .layer(axum::middleware::from_fn(
                move |request: Request, next: Next| {
                    let limits = limits.clone();
                    async move { check_head(&limits, request, next).await }
                },
            ))
    }
}

async fn check_head(limits: &Limits, request: Request, next: Next) -> Response {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    match limits.head_problem(uri_bytes, request.headers()) {
        Some(problem) => problem.into_response(),
        None => next.run(request).await,
    }
}

async fn overload_response(error: tower::BoxError) -> Response {
    if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::RequestTimeout.into_response()
    } else if error.is::<tower::load_shed::error::Overloaded>() {
        ApiError::Overloaded.into_response()
    } else {
        tracing::error!(%error, "request failed in the limits layer");
        ApiError::Overloaded.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn heads_over_the_limits_are_named() {
        let limits = Limits {
            max_uri_bytes: 10,
            max_header_bytes: 20,
            ..Limits::default()
        };
        let mut headers = HeaderMap::new();
        assert!(limits.head_problem(10, &headers).is_none());
        assert!(matches!(
            limits.head_problem(11, &headers),
            Some(ApiError::UriTooLong)
        ));
        headers.insert("x-a", HeaderValue::from_static("0123456789"));
        assert!(limits.head_problem(1, &headers).is_none());
        headers.insert("x-b", HeaderValue::from_static("0123456789"));
        assert!(matches!(
            limits.head_problem(1, &headers),
            Some(ApiError::HeadersTooLarge)
        ));
    }
}
