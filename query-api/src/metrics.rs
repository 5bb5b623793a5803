//! The API's own metrics: their names (one home, so the code that counts, docs/api.md and the
//! Grafana dashboard name the same series), their descriptions, the recorder /metrics renders
//! and the middleware that counts and times every request. Counting elsewhere is done where
//! the event happens, through the `metrics` macros: ClickHouse queries in
//! [`crate::store`], the identity cache in [`crate::identity`], throttled clients in
//! [`crate::auth_throttle`].
//!
//! Labels are bounded: the route is the matched route template, canonical (the one of
//! [`crate::routes::ROUTES`], whichever of its slash twins was asked), never the raw path
//! (unbounded, and query strings may hold token keys); a request no route matched is
//! `fallback`.

use std::sync::Once;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::PrometheusHandle;

pub mod names {
    pub const REQUESTS: &str = "logbus_api_requests_total";
    pub const REQUEST_SECONDS: &str = "logbus_api_request_duration_seconds";
    pub const IN_FLIGHT: &str = "logbus_api_requests_in_flight";
    pub const QUERY_SECONDS: &str = "logbus_api_clickhouse_query_duration_seconds";
    pub const QUERY_ERRORS: &str = "logbus_api_clickhouse_errors_total";
    pub const CACHE_HITS: &str = "logbus_api_identity_cache_hits_total";
    pub const CACHE_MISSES: &str = "logbus_api_identity_cache_misses_total";
    pub const AUTH_THROTTLED: &str = "logbus_api_auth_throttled_total";
    pub const TAIL_STREAMS: &str = "logbus_api_tail_streams";
    pub const TAIL_EVENTS: &str = "logbus_api_tail_events_total";
    pub const TAIL_LAGGED: &str = "logbus_api_tail_lagged_total";

    /// Every name above (the dashboard's test checks its queries against them).
    pub const ALL: &[&str] = &[
        REQUESTS,
        REQUEST_SECONDS,
        IN_FLIGHT,
        QUERY_SECONDS,
        QUERY_ERRORS,
        CACHE_HITS,
        CACHE_MISSES,
        AUTH_THROTTLED,
        TAIL_STREAMS,
        TAIL_EVENTS,
        TAIL_LAGGED,
    ];
}

/// The `route` of requests no route matched (unknown paths).
pub const FALLBACK_ROUTE: &str = "fallback";

static DESCRIBED: Once = Once::new();

/// The process-wide Prometheus recorder ([`logbus_runtime::metrics::handle`], shared with an
/// ingest worker in the same process), with the API's metrics described.
pub fn handle() -> PrometheusHandle {
    let handle = logbus_runtime::metrics::handle();
    DESCRIBED.call_once(describe);
    handle
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        names::REQUESTS,
        "Requests answered, by route template, method and status"
    );
    describe_histogram!(
        names::REQUEST_SECONDS,
        "Time from a request's arrival to its response head (a streamed body not included), by route template and method"
    );
    describe_gauge!(names::IN_FLIGHT, "Requests being handled");
    describe_histogram!(
        names::QUERY_SECONDS,
        "Time of one ClickHouse query (to its result, or to an export's first row), by kind"
    );
    describe_counter!(
        names::QUERY_ERRORS,
        "Failed ClickHouse queries, by kind and error (clickhouse: refused or unreachable; timeout: over --query-timeout-secs)"
    );
    describe_counter!(
        names::CACHE_HITS,
        "Identity lookups answered by the cache, by kind (user, token, owner)"
    );
    describe_counter!(
        names::CACHE_MISSES,
        "Identity lookups that read ClickHouse (not cached, unknown, or the cache disabled), by kind"
    );
    describe_counter!(
        names::AUTH_THROTTLED,
        "Credential checks answered 429 because the client address exceeded its budget of failed authentications"
    );
    describe_gauge!(names::TAIL_STREAMS, "Live tails open");
    describe_counter!(
        names::TAIL_EVENTS,
        "Logs sent to live tails (one per log and client)"
    );
    describe_counter!(
        names::TAIL_LAGGED,
        "Live tails ended because the client fell further behind than the shared reader keeps"
    );
}

/// The `route` label of a request whose matched route template is `matched`: the canonical
/// path of `routes` it is (or is the slash twin of), else [`FALLBACK_ROUTE`].
pub fn route_label(matched: Option<&str>, routes: &[(&str, &'static str)]) -> &'static str {
    let Some(matched) = matched else {
        return FALLBACK_ROUTE;
    };
    let bare = matched.strip_suffix('/').unwrap_or(matched);
    routes
        .iter()
        .map(|(_, path)| *path)
        .find(|path| path.strip_suffix('/').unwrap_or(path) == bare)
        .unwrap_or(FALLBACK_ROUTE)
}

/// The `method` label: the standard methods by name, anything else `other`.
pub fn method_label(method: &Method) -> &'static str {
    const KNOWN: &[Method] = &[
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("other", Method::as_str)
}

/// Decrements the in-flight gauge when the request ends, also when its client goes away
/// (the future is dropped).
struct InFlight;

impl InFlight {
    fn start() -> Self {
        gauge!(names::IN_FLIGHT).increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!(names::IN_FLIGHT).decrement(1.0);
    }
}

/// Counts and times `request` under its route of `routes` (installed on the router, where
/// the matched route is known).
pub async fn track(routes: &[(&str, &'static str)], request: Request, next: Next) -> Response {
    let route = route_label(
        request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
        routes,
    );
    let method = method_label(request.method());
    let started = Instant::now();
    let in_flight = InFlight::start();
    let response = next.run(request).await;
    drop(in_flight);
    histogram!(names::REQUEST_SECONDS, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    let status = response.status();
    counter!(names::REQUESTS, "route" => route, "method" => method,
        "status" => status.as_str().to_owned())
    .increment(1);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &[(&str, &str)] = &[("GET", "/api/log/"), ("GET", "/api/log/self")];

    #[test]
    fn routes_are_labelled_by_their_canonical_template() {
        assert_eq!(route_label(Some("/api/log/"), ROUTES), "/api/log/");
        assert_eq!(route_label(Some("/api/log"), ROUTES), "/api/log/");
        assert_eq!(route_label(Some("/api/log/self"), ROUTES), "/api/log/self");
        assert_eq!(route_label(Some("/api/log/self/"), ROUTES), "/api/log/self");
        assert_eq!(route_label(Some("/elsewhere"), ROUTES), FALLBACK_ROUTE);
        assert_eq!(route_label(None, ROUTES), FALLBACK_ROUTE);
    }

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        let custom = Method::from_bytes(b"PURGE").expect("a method");
        assert_eq!(method_label(&custom), "other");
    }

    #[test]
    fn names_are_unique_and_prefixed() {
        let mut all = names::ALL.to_vec();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), names::ALL.len());
        assert!(all.iter().all(|name| name.starts_with("logbus_api_")));
    }
}
