//! new-api's dashboard rows (`QuotaData`), as `/api/data/*` answer them.

use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, Schema};

use super::envelope::{EnvelopeData, Gate, named, reference};

/// Consumption of one hour bucket: new-api's `QuotaData`, every key always present, in
/// new-api's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct QuotaDataItem {
    /// 0 on rows aggregated over users (`/api/data/` without username, `/api/data/users`), as
    /// in new-api; elsewhere a display sequence number (`i + 1`), not an identity.
    pub id: u64,
    /// 0 where the row is aggregated over users.
    pub user_id: i64,
    /// `""` on `/api/data/` without username.
    pub username: String,
    /// `""` on `/api/data/users`.
    pub model_name: String,
    /// Start of the UTC hour (a multiple of 3600).
    pub created_at: i64,
    /// Prompt + completion tokens.
    pub token_used: i64,
    /// Consumption logs.
    pub count: u64,
    /// Sum of quota.
    pub quota: i64,
}

/// The envelope of the dashboard rows.
pub type QuotaDataResponse = super::Envelope<Vec<QuotaDataItem>>;

impl EnvelopeData for Vec<QuotaDataItem> {
    const ENVELOPE: &'static str = "QuotaDataResponse";
    fn data_schema() -> RefOr<Schema> {
        ArrayBuilder::new()
            .items(reference::<QuotaDataItem>())
            .into()
    }
    fn named_schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        named::<QuotaDataItem>(schemas);
    }
}

/// [`super::SignedIn`] for `/api/data/self`, which refuses ranges over 30 days.
#[derive(Debug)]
pub struct SignedInMonth;

impl Gate for SignedInMonth {
    const REFUSALS: &'static [(u16, &'static str)] = &[
        (
            400,
            "Bad input, or a range over 30 days: 时间跨度不能超过 1 个月",
        ),
        (401, ""),
        (403, ""),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_new_apis_in_its_order() {
        let item = QuotaDataItem {
            id: 0,
            user_id: 0,
            username: String::new(),
            model_name: "gpt-4o".into(),
            created_at: 3600,
            token_used: 30,
            count: 1,
            quota: 100,
        };
        assert_eq!(
            serde_json::to_string(&item).unwrap(),
            r#"{"id":0,"user_id":0,"username":"","model_name":"gpt-4o","created_at":3600,"token_used":30,"count":1,"quota":100}"#
        );
    }
}
