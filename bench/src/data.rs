//! The benchmark's data set: the rows, events and vocabulary are `logbus-gen`'s (one
//! generator for the demo, the tests and the benchmark); what is the benchmark's own is the
//! credentials it authenticates with and the identity rows it bulk-loads.

pub(crate) use logbus_gen::catalog::{DEFAULT_KEYWORD, RARE_KEYWORD, model_name, username};
use logbus_gen::catalog::{token_name, token_owner, user_group};
pub(crate) use logbus_gen::generator::new_event_id;
pub(crate) use logbus_gen::{Generator, Shape, event_json};
use logbus_projections::identity::{hash_access_token, hash_token_key};
use logbus_projections::rows::{TokenRow, UserRow};

/// Access tokens the benchmark uses to authenticate against the query API.
pub(crate) const ADMIN_ACCESS_TOKEN: &str = "bench-admin-access-token-0000000000";
pub(crate) const SELF_ACCESS_TOKEN: &str = "bench-user-access-token-00000000000";

/// Plain key (without `sk-`) of token `id`, whose SHA-256 is stored in `tokens`.
pub(crate) fn token_key(id: u32) -> String {
    format!("bench{id:043}")
}

/// Access token of gateway user `id` (user 1's is [`SELF_ACCESS_TOKEN`]).
pub(crate) fn access_token(id: u32) -> String {
    if id == 1 {
        SELF_ACCESS_TOKEN.to_string()
    } else {
        format!("bench-user-{id}")
    }
}

/// Admin user id: one above the gateway users.
pub(crate) fn admin_id(shape: &Shape) -> u32 {
    shape.users + 1
}

/// Identity rows: every gateway user, one admin, every token.
pub(crate) fn identity(shape: &Shape) -> (Vec<UserRow>, Vec<TokenRow>) {
    let mut users: Vec<UserRow> = (1..=shape.users)
        .map(|id| UserRow {
            id: id as i64,
            username: username(id),
            role: 1,
            status: 1,
            group: user_group(shape, id).to_string(),
            access_token_sha256: hash_access_token(&access_token(id)),
            version: 1,
        })
        .collect();
    users.push(UserRow {
        id: admin_id(shape) as i64,
        username: "admin".into(),
        role: 100,
        status: 1,
        group: "default".into(),
        access_token_sha256: hash_access_token(ADMIN_ACCESS_TOKEN),
        version: 1,
    });
    let tokens = (1..=shape.tokens)
        .map(|id| TokenRow {
            id: id as i64,
            user_id: token_owner(shape, id) as i64,
            name: token_name(id),
            key_sha256: hash_token_key(&token_key(id)),
            status: 1,
            version: 1,
        })
        .collect();
    (users, tokens)
}
