//! new-api's envelope `{success, message, data}` of a success and `{success, message}` of an
//! error, and how the OpenAPI document describes them.
//!
//! The document names each success envelope after its data, as it always has
//! (`LogPageResponse`, ...): see [`EnvelopeData`]. The error responses are described here
//! rather than in [`crate::openapi`] because the handlers' path attributes name them and
//! `openapi` names the handlers, and imports go one way.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::Serialize;
use utoipa::openapi::schema::{
    ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, response::Response};
use utoipa::{IntoResponses, PartialSchema, ToSchema};

use super::{LogItem, LogPage, StatData};

/// new-api's response envelope of a success.
#[derive(Debug, Serialize)]
pub struct Envelope<T> {
    pub success: bool,
    pub message: String,
    pub data: T,
}

impl<T> Envelope<T> {
    pub fn ok(data: T) -> Self {
        Envelope {
            success: true,
            message: String::new(),
            data,
        }
    }
}

/// The envelope of a page of logs.
pub type LogPageResponse = Envelope<LogPage>;
/// The envelope of search results and a token's logs.
pub type LogListResponse = Envelope<Vec<LogItem>>;
/// The envelope of the stat.
pub type StatResponse = Envelope<StatData>;
/// The envelope of a delete's count.
pub type DeleteResponse = Envelope<u64>;
/// The envelope of the health answer.
pub type HealthResponse = Envelope<&'static str>;

/// A type that a success envelope carries as `data`, with the name the OpenAPI document gives
/// that envelope and the schema of its `data`.
pub trait EnvelopeData {
    /// The schema name of `Envelope<Self>`.
    const ENVELOPE: &'static str;
    /// The schema of `data`.
    fn data_schema() -> RefOr<Schema>;
    /// The named schemas that [`Self::data_schema`] refers to.
    fn named_schemas(_schemas: &mut Vec<(String, RefOr<Schema>)>) {}
}

/// A reference to `T`'s named schema.
pub(super) fn reference<T: ToSchema>() -> RefOr<Schema> {
    Ref::from_schema_name(T::name()).into()
}

/// `T`'s named schema and those it refers to.
pub(super) fn named<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

impl EnvelopeData for LogPage {
    const ENVELOPE: &'static str = "LogPageResponse";
    fn data_schema() -> RefOr<Schema> {
        reference::<LogPage>()
    }
    fn named_schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        named::<LogPage>(schemas);
    }
}

impl EnvelopeData for Vec<LogItem> {
    const ENVELOPE: &'static str = "LogListResponse";
    fn data_schema() -> RefOr<Schema> {
        ArrayBuilder::new().items(reference::<LogItem>()).into()
    }
    fn named_schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        named::<LogItem>(schemas);
    }
}

impl EnvelopeData for StatData {
    const ENVELOPE: &'static str = "StatResponse";
    fn data_schema() -> RefOr<Schema> {
        reference::<StatData>()
    }
    fn named_schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        named::<StatData>(schemas);
    }
}

/// The number of log rows a delete removed.
impl EnvelopeData for u64 {
    const ENVELOPE: &'static str = "DeleteResponse";
    fn data_schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .description(Some(
                "Number of log rows deleted (with dry_run=true: that would be deleted).",
            ))
            .minimum(Some(0))
            .into()
    }
}

/// The health answer, `ok`.
impl EnvelopeData for &'static str {
    const ENVELOPE: &'static str = "HealthResponse";
    fn data_schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::String).into()
    }
}

impl<T: EnvelopeData> PartialSchema for Envelope<T> {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .property("success", ObjectBuilder::new().schema_type(Type::Boolean))
            .required("success")
            .property("message", ObjectBuilder::new().schema_type(Type::String))
            .required("message")
            .property("data", T::data_schema())
            .required("data")
            .into()
    }
}

impl<T: EnvelopeData> ToSchema for Envelope<T> {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed(T::ENVELOPE)
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        T::named_schemas(schemas);
    }
}

/// A refusal or failure. The message is Chinese unless `Accept-Language` prefers English.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorResponse {
    // `message` first: the body's keys have always been in this order.
    pub message: String,
    /// Always false.
    pub success: bool,
}

/// What an endpoint checks before it queries, and so which refusals it documents besides the
/// 500 that every query can fail with and the answers of the limits that every request is
/// under ([`LIMITS`]).
pub trait Gate {
    /// `(status, description)` of each refusal.
    const REFUSALS: &'static [(u16, &'static str)];
    /// Whether the endpoint queries ClickHouse, and so can fail with a 500.
    const QUERIES: bool = true;
}

/// The 429 of every endpoint that checks a credential.
const THROTTLED: &str = "Too many failed authentications from this client address \
    (--auth-failures-per-minute); the Retry-After header says when to try again";

/// What [`crate::limits::Limits`] answers on any path, before or instead of the handler.
const LIMITS: &[(u16, &str)] = &[
    (414, "The request target is longer than --max-uri-bytes"),
    (
        431,
        "The request headers are larger than --max-header-bytes",
    ),
    (
        503,
        "More requests at once than --max-concurrent-requests (or new-api, asked about a \
         session cookie, is unavailable)",
    ),
    (
        504,
        "No answer within --request-timeout-secs, or ClickHouse timed out",
    ),
];

/// An access token and `New-Api-User` (the user and admin endpoints): bad input, not
/// authenticated, role too low.
#[derive(Debug)]
pub struct SignedIn;

impl Gate for SignedIn {
    const REFUSALS: &'static [(u16, &'static str)] =
        &[(400, ""), (401, ""), (403, ""), (429, THROTTLED)];
}

/// [`SignedIn`] for the retention delete, whose `target_timestamp` is required and checked
/// against the clock, and which runs one at a time.
#[derive(Debug)]
pub struct SignedInDelete;

impl Gate for SignedInDelete {
    const REFUSALS: &'static [(u16, &'static str)] = &[
        (
            400,
            "target timestamp is required; or a target in the future, or within the \
                 minimum retention age of now without confirm=true",
        ),
        (401, ""),
        (403, ""),
        (
            409,
            "Another delete is running (in this or another API replica)",
        ),
        (429, THROTTLED),
    ];
}

/// A token key (the public token endpoint): bad input, unknown or disabled key.
#[derive(Debug)]
pub struct PublicToken;

impl Gate for PublicToken {
    const REFUSALS: &'static [(u16, &'static str)] = &[
        (400, ""),
        (401, "Unknown or disabled key: Token不存在或无权限"),
        (403, "The token's owner is disabled"),
        (429, THROTTLED),
    ];
}

/// Nothing (health).
#[derive(Debug)]
pub struct Open;

impl Gate for Open {
    const REFUSALS: &'static [(u16, &'static str)] = &[];
}

/// Nothing, and no query (the OpenAPI document).
#[derive(Debug)]
pub struct Static;

impl Gate for Static {
    const REFUSALS: &'static [(u16, &'static str)] = &[];
    const QUERIES: bool = false;
}

/// The error responses of an endpoint behind gate `G`, each an [`ErrorResponse`]: the one
/// description of them that every path uses.
#[derive(Debug)]
pub struct ErrorResponses<G>(PhantomData<G>);

impl<G: Gate> IntoResponses for ErrorResponses<G> {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let failure: &[(u16, &str)] = if G::QUERIES { &[(500, "")] } else { &[] };
        G::REFUSALS
            .iter()
            .chain(failure)
            .chain(LIMITS)
            .map(|(status, description)| {
                let content = ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorResponse")))
                    .build();
                let response = ResponseBuilder::new()
                    .description(*description)
                    .content("application/json", content)
                    .build();
                (status.to_string(), response.into())
            })
            .collect()
    }
}
