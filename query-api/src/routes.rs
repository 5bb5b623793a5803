//! The router: every path of [`ROUTES`] with and without a trailing slash, the CORS of the
//! public token endpoint, the JSON fallbacks of unknown paths and methods, the request's
//! error-message language, `Cache-Control: no-store` on every response, request spans
//! that never show query strings (they may hold token keys) and the request metrics
//! ([`crate::metrics::track`], by route template).

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::header::{ACCEPT_LANGUAGE, CACHE_CONTROL};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use tower_http::cors::{Any, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::console;
use crate::error::{self, Lang};
use crate::handlers::{data, export, logs, ops, retention, series, stat, tail, token};
use crate::limits::Limits;
use crate::metrics;
use crate::openapi::openapi_json;
use crate::state::AppState;

/// Every route: (method, canonical path). Each path is also served with (or without) a
/// trailing slash. The OpenAPI document must describe each of them (checked by a test).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/log/"),
    ("DELETE", "/api/log/"),
    ("GET", "/api/log/self"),
    ("GET", "/api/log/stat"),
    ("GET", "/api/log/self/stat"),
    ("GET", "/api/log/search"),
    ("GET", "/api/log/self/search"),
    ("GET", "/api/log/token"),
    ("GET", "/api/log/export"),
    ("GET", "/api/log/self/export"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/api/data/"),
    ("GET", "/api/data/users"),
    ("GET", "/api/data/self"),
    ("GET", "/api/log/stat/series"),
    ("GET", "/api/log/self/stat/series"),
    ("GET", "/api/log/tail"),
    ("GET", "/api/log/self/tail"),
];

/// CORS for the public token endpoint only: any origin, preflight answered.
fn token_cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::OPTIONS])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            ACCEPT_LANGUAGE,
            HeaderName::from_static("new-api-user"),
        ])
        .max_age(Duration::from_secs(600))
}

fn method_router(path: &str) -> MethodRouter<AppState> {
    match path {
        "/api/log/" => get(logs::list_all).delete(retention::delete_before),
        "/api/log/self" => get(logs::list_self),
        "/api/log/stat" => get(stat::stat_all),
        "/api/log/self/stat" => get(stat::stat_self),
        "/api/log/search" => get(logs::search_all),
        "/api/log/self/search" => get(logs::search_self),
        // An explicit fallback, so that the CORS layer also wraps OPTIONS (preflight).
        "/api/log/token" => get(token::token_logs)
            .fallback(ops::method_not_allowed)
            .layer(token_cors()),
        "/api/data/" => get(data::data_all),
        "/api/data/users" => get(data::data_users),
        "/api/data/self" => get(data::data_self),
        "/api/log/stat/series" => get(series::series_all),
        "/api/log/self/stat/series" => get(series::series_self),
        "/api/log/export" => get(export::export_all),
        "/api/log/self/export" => get(export::export_self),
        "/api/log/tail" => get(tail::tail_all),
        "/api/log/self/tail" => get(tail::tail_self),
        "/healthz" => get(ops::healthz),
        "/metrics" => get(ops::metrics),
        "/openapi.json" => get(openapi_json),
        other => panic!("route {other} has no handler"),
    }
}

/// Sets the language of error messages for the request (see [`Lang`]).
pub async fn language_scope(request: Request, next: Next) -> Response {
    let lang = Lang::from_accept_language(
        request
            .headers()
            .get(ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    error::LANG.scope(lang, next.run(request)).await
}

/// The API router, under `limits`.
pub fn app(state: AppState, limits: &Limits) -> Router {
    // Installs the recorder before the first request is counted.
    let _ = metrics::handle();
    let mut router = Router::new();
    let mut paths: Vec<&str> = ROUTES.iter().map(|(_, path)| *path).collect();
    paths.dedup();
    for path in paths {
        let twin = match path.strip_suffix('/') {
            Some(bare) => bare.to_owned(),
            None => format!("{path}/"),
        };
        router = router
            .route(path, method_router(path))
            .route(&twin, method_router(path));
    }
    // The console's files are not API routes: they are neither in ROUTES nor in the document.
    let router = router
        .merge(console::router())
        .method_not_allowed_fallback(ops::method_not_allowed)
        .fallback(ops::not_found);
    limits
        .apply(router)
        .layer(axum::middleware::from_fn(language_scope))
        // Logs are per-user data behind credentials: no browser or proxy may keep a copy.
        .layer(SetResponseHeaderLayer::overriding(
            CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        // Spans name the path only: query strings may hold token keys.
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
            }),
        )
        // Outermost of the per-route layers: overload, timeouts and oversize heads are
        // counted too, and the matched route is known (a layer around the router would not
        // see it).
        .layer(axum::middleware::from_fn(|request: Request, next: Next| {
            metrics::track(ROUTES, request, next)
        }))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use utoipa::OpenApi;

    use super::*;
    use crate::openapi::ApiDoc;

    #[test]
    fn the_document_gives_the_ranges_the_parser_enforces() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("serializes");
        let parameters = doc["paths"]["/api/log/"]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .clone();
        let schema = |name: &str| {
            parameters
                .iter()
                .find(|p| p["name"] == name)
                .map(|p| p["schema"].clone())
                .unwrap_or_else(|| panic!("{name} documented"))
        };
        assert_eq!(schema("type")["minimum"], 0);
        assert_eq!(schema("type")["maximum"], 255);
        assert_eq!(schema("start_timestamp")["minimum"], 0);
        assert_eq!(schema("end_timestamp")["minimum"], 0);
    }

    #[test]
    fn the_metrics_are_documented_as_public_prometheus_text() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("serializes");
        let metrics = &doc["paths"]["/metrics"]["get"];
        assert!(metrics["responses"]["200"]["content"]["text/plain"].is_object());
        assert!(metrics["security"].is_null(), "{metrics}");
    }

    #[test]
    fn every_route_has_a_handler_and_is_documented() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("serializes");
        for (method, path) in ROUTES {
            let _ = method_router(path);
            assert!(
                doc["paths"][path][method.to_ascii_lowercase()].is_object(),
                "{method} {path} missing from the OpenAPI document"
            );
        }
    }
}
