//! logbus query API: new-api's log module (`/api/log/...`) served from ClickHouse.
//!
//! [`app`] builds the router from an [`AppState`]; binding and serving are separate
//! ([`run`], used by the `logbus-query-api` binary) so that tests can serve it on port 0.
//! The endpoints and their differences from new-api are described in docs/api.md.

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod params;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::header::ACCEPT_LANGUAGE;
use axum::http::{HeaderName, Method};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use tower_http::cors::{Any, CorsLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};

pub use config::Config;
pub use error::{ApiError, Lang};

use crate::store::{IdentityCache, Store};

/// Shared state of the handlers: cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: Store,
    identity: IdentityCache,
    delete_lock: tokio::sync::Mutex<()>,
}

impl AppState {
    /// State for `config`; connects lazily (the first query opens the connection).
    pub fn new(config: &Config) -> Self {
        let client = config.clickhouse.client().with_setting(
            "max_execution_time",
            config.query_timeout().as_secs().to_string(),
        );
        Self::from_client(client, config.query_timeout(), config.identity_cache_ttl())
    }

    /// State over an existing client (whose database is the logbus one).
    pub fn from_client(
        client: clickhouse::Client,
        query_timeout: Duration,
        identity_cache_ttl: Duration,
    ) -> Self {
        let store = Store::new(client, query_timeout);
        Self(Arc::new(Inner {
            identity: IdentityCache::new(store.clone(), identity_cache_ttl),
            store,
            delete_lock: tokio::sync::Mutex::new(()),
        }))
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn identity(&self) -> &IdentityCache {
        &self.0.identity
    }

    /// Deletions run one at a time.
    pub fn delete_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.0.delete_lock
    }
}

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
    ("GET", "/healthz"),
    ("GET", "/openapi.json"),
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
        "/api/log/" => get(api::list_all).delete(api::delete_before),
        "/api/log/self" => get(api::list_self),
        "/api/log/stat" => get(api::stat_all),
        "/api/log/self/stat" => get(api::stat_self),
        "/api/log/search" => get(api::search_all),
        "/api/log/self/search" => get(api::search_self),
        // An explicit fallback, so that the CORS layer also wraps OPTIONS (preflight).
        "/api/log/token" => get(api::token_logs)
            .fallback(api::method_not_allowed)
            .layer(token_cors()),
        "/healthz" => get(api::healthz),
        "/openapi.json" => get(api::openapi_json),
        other => panic!("route {other} has no handler"),
    }
}

/// Sets the language of error messages for the request (see [`Lang`]).
async fn language_scope(request: Request, next: Next) -> Response {
    let lang = Lang::from_accept_language(
        request
            .headers()
            .get(ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    error::LANG.scope(lang, next.run(request)).await
}

/// The API router.
pub fn app(state: AppState) -> Router {
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
    router
        .method_not_allowed_fallback(api::method_not_allowed)
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn(language_scope))
        // Spans name the path only: query strings may hold token keys.
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path())
            }),
        )
        .with_state(state)
}

/// Binds `config.listen` and serves until `shutdown` completes, then drains open requests.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = AppState::new(&config);
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(addr = %listener.local_addr()?, ?config, "logbus-query-api listening");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("logbus-query-api stopped");
    Ok(())
}

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "access_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "The user's system access token, optionally prefixed with `Bearer `",
            ))),
        );
        components.add_security_scheme(
            "new_api_user",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "New-Api-User",
                "The id of the user the access token belongs to",
            ))),
        );
    }
}

/// The OpenAPI 3 document, generated from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "logbus query API",
        description = "new-api's log module over ClickHouse. Responses use new-api's envelope \
                       {success, message, data}; every path is also served with or without a \
                       trailing slash. See docs/api.md."
    ),
    paths(
        api::list_all,
        api::delete_before,
        api::list_self,
        api::stat_all,
        api::stat_self,
        api::search_all,
        api::search_self,
        api::token_logs,
        api::healthz,
        api::openapi_json
    ),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    use super::*;

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
