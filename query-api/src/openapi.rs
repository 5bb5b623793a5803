//! The OpenAPI 3 document, generated from the handlers' path attributes: their parameters are
//! the types [`crate::params`] produces and their responses the types [`crate::views`]
//! serializes, so the document describes what is read and answered. Served at
//! `/openapi.json`; a test checks that it lists every route of [`crate::routes::ROUTES`].

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};

use crate::handlers::{data, export, logs, ops, retention, series, stat, token};
use crate::views::ErrorResponse;

/// The two headers of new-api's authentication.
#[derive(Debug)]
struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "access_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "The user's system access token, optionally prefixed with `Bearer `. When the \
                 server runs with `--newapi-url`, new-api's `session` cookie may stand in for it \
                 (checked with new-api's `/api/user/self`; docs/adopting.md).",
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
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "logbus query API",
        description = "new-api's log module and dashboard data over ClickHouse, plus usage \
                       time series (a logbus extension). Responses use new-api's envelope \
                       {success, message, data}, except this document and /metrics \
                       (Prometheus text); every path is also served with or without a \
                       trailing slash. See docs/api.md."
    ),
    paths(
        logs::list_all,
        retention::delete_before,
        logs::list_self,
        stat::stat_all,
        stat::stat_self,
        logs::search_all,
        logs::search_self,
        token::token_logs,
        series::series_all,
        series::series_self,
        data::data_all,
        data::data_users,
        data::data_self,
        export::export_all,
        export::export_self,
        ops::healthz,
        ops::metrics,
        openapi_json
    ),
    // Named by the error responses, which reference it rather than collect it.
    components(schemas(ErrorResponse)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "OpenAPI 3 document")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
