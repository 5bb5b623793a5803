//! The OpenAPI 3 document, generated from the handlers' path attributes: their parameters are
//! the types [`crate::params`] produces and their responses the types [`crate::views`]
//! serializes, so the document describes what is read and answered. Served at
//! `/openapi.json`; a test checks that it lists every route of [`crate::routes::ROUTES`].

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{PathItem, RefOr};

use crate::handlers::{data, export, logs, ops, retention, series, stat, tail, token};
use crate::params::{MAX_STRING_PARAM, TimeZone};
use crate::views::{ErrorResponse, ErrorResponses, ExportFormat, Static};

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

/// The length limit of [`crate::params::Params::string`], which reads every free-form string
/// parameter, on each string parameter that has no enum or pattern of its own.
#[derive(Debug)]
struct StringLimits;

impl StringLimits {
    fn operations(
        item: &mut PathItem,
    ) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .filter_map(Option::as_mut)
    }
}

impl utoipa::Modify for StringLimits {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in Self::operations(item) {
                let parameters = operation.parameters.iter_mut().flatten();
                for schema in parameters.filter_map(|p| p.schema.as_mut()) {
                    if let RefOr::T(Schema::Object(object)) = schema
                        && object.schema_type == SchemaType::Type(Type::String)
                        && object.enum_values.is_none()
                        && object.pattern.is_none()
                    {
                        object.max_length = Some(MAX_STRING_PARAM);
                    }
                }
            }
        }
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
        tail::tail_all,
        tail::tail_self,
        ops::healthz,
        ops::metrics,
        openapi_json
    ),
    // Referenced rather than collected: by the error responses and by parameters.
    components(schemas(ErrorResponse, ExportFormat, TimeZone)),
    modifiers(&SecuritySchemes, &StringLimits)
)]
pub struct ApiDoc;

/// This OpenAPI document.
#[utoipa::path(get, path = "/openapi.json", tag = "ops",
    responses((status = 200, description = "OpenAPI 3 document",
        content_type = "application/json", body = Object), ErrorResponses<Static>))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn document() -> Value {
        serde_json::to_value(ApiDoc::openapi()).expect("serializes")
    }

    fn operations(doc: &Value) -> impl Iterator<Item = (String, &Value)> {
        doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                let item = item.as_object().expect("path item");
                item.iter()
                    .map(move |(method, op)| (format!("{method} {path}"), op))
            })
    }

    fn parameter<'a>(doc: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{method} {path} documents {name}"))
    }

    fn references(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target.clone());
                }
                map.values().for_each(|v| references(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| references(v, found)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let mut found = Vec::new();
        references(&doc, &mut found);
        assert!(found.iter().any(|r| r.ends_with("/ExportFormat")));
        for target in found {
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{target}: not a schema reference"));
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{target} is not among the components"
            );
        }
    }

    #[test]
    fn every_operation_documents_the_answers_of_the_limits() {
        let doc = document();
        for (operation, op) in operations(&doc) {
            for status in ["414", "431", "503", "504"] {
                assert!(
                    op["responses"][status].is_object(),
                    "{operation} lacks {status}"
                );
            }
        }
        assert!(doc["paths"]["/openapi.json"]["get"]["responses"]["500"].is_null());
        let token = &doc["paths"]["/api/log/token"]["get"]["responses"];
        assert!(token["403"].is_object(), "a disabled owner's token is 403");
    }

    #[test]
    fn the_series_and_the_delete_give_the_ranges_the_parser_enforces() {
        let doc = document();
        let series = |name| parameter(&doc, "/api/log/stat/series", "get", name)["schema"].clone();
        assert_eq!(series("start_timestamp")["minimum"], 1, "0 means absent");
        assert_eq!(
            series("interval")["enum"],
            serde_json::json!(["minute", "hour", "day"])
        );
        assert_eq!(series("top")["minimum"], 1);
        assert_eq!(series("top")["maximum"], crate::params::MAX_TOP);
        let zones = doc["components"]["schemas"]["TimeZone"]["enum"]
            .as_array()
            .expect("time zones");
        assert!(zones.contains(&Value::from("Asia/Shanghai")));
        for zone in zones {
            let zone = zone.as_str().expect("a name");
            assert!(zone.parse::<chrono_tz::Tz>().is_ok(), "{zone}");
        }
        let target = parameter(&doc, "/api/log/", "delete", "target_timestamp");
        assert_eq!(target["required"], true);
        assert_eq!(target["schema"]["minimum"], 1);
        assert_eq!(target["schema"]["maximum"], u32::MAX);
    }

    #[test]
    fn free_form_strings_give_the_length_limit() {
        let doc = document();
        let username = parameter(&doc, "/api/log/", "get", "username");
        assert_eq!(username["schema"]["maxLength"], MAX_STRING_PARAM);
        let cursor = parameter(&doc, "/api/log/", "get", "cursor");
        assert!(cursor["schema"]["pattern"].is_string());
        assert!(
            cursor["schema"]["maxLength"].is_null(),
            "the pattern bounds it"
        );
    }
}
