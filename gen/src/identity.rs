//! The live gateway's identity events: every user (user 1 `root`, users 2 and 3 admins) with
//! an access token, every token with an `sk-` key, all derived from the seed so that a demo
//! can print a working credential.

use logbus_projections::identity::{IdentityEvent, Secret, TokenIdentity, UserIdentity};
use logbus_projections::rows::identity_codes;
use sha2::{Digest, Sha256};

use crate::catalog::{Shape, token_name, token_owner, user_group, username};
use crate::generator::Generator;

/// A credential derived from `seed` and `what`, `len` hex characters long.
fn secret(seed: u64, what: &str, len: usize) -> String {
    let digest = Sha256::digest(format!("logbus-gen/{seed}/{what}").as_bytes());
    let mut text = hex::encode(digest);
    while text.len() < len {
        let more = Sha256::digest(text.as_bytes());
        text.push_str(&hex::encode(more));
    }
    text.truncate(len);
    text
}

fn access_token(seed: u64, user: u32) -> String {
    secret(seed, &format!("user/{user}/access"), 32)
}

/// The access token of user 1 (root) for `seed`: what a demo prints so the API can be called.
pub fn admin_access_token(seed: u64) -> String {
    access_token(seed, 1)
}

/// The Kafka key of an identity event (docs/events.md): `user:<id>` or `token:<id>`.
pub fn identity_key(event: &IdentityEvent) -> String {
    match event {
        IdentityEvent::User(user) => format!("user:{}", user.id),
        IdentityEvent::Token(token) => format!("token:{}", token.id),
    }
}

fn role(user: u32) -> i32 {
    match user {
        1 => identity_codes::ROLE_ROOT,
        2 | 3 => identity_codes::ROLE_ADMIN,
        _ => identity_codes::ROLE_USER,
    }
}

/// One identity event per user and per token of `shape` (version 1).
pub fn identity_events(shape: &Shape) -> Vec<IdentityEvent> {
    let users = (1..=shape.users).map(|id| {
        IdentityEvent::User(UserIdentity {
            id: i64::from(id),
            username: if id == 1 { "root".into() } else { username(id) },
            role: role(id),
            status: identity_codes::STATUS_ENABLED,
            group: user_group(shape, id).to_owned(),
            access_token_sha256: None,
            access_token: Some(Secret::new(access_token(shape.seed, id))),
            version: 1,
        })
    });
    let tokens = (1..=shape.tokens).map(|id| {
        IdentityEvent::Token(TokenIdentity {
            id: i64::from(id),
            user_id: i64::from(token_owner(shape, id)),
            name: token_name(id),
            key_sha256: None,
            key: Some(Secret::new(format!(
                "sk-{}",
                secret(shape.seed, &format!("token/{id}"), 48)
            ))),
            status: identity_codes::STATUS_ENABLED,
            version: 1,
        })
    });
    users.chain(tokens).collect()
}

impl Generator {
    /// The identity events of the generator's gateway ([`identity_events`]).
    pub fn identity_events(&self) -> Vec<IdentityEvent> {
        identity_events(self.shape())
    }
}

#[cfg(test)]
mod tests {
    use logbus_projections::identity::{hash_access_token, parse_identity_message};

    use super::*;

    #[test]
    fn every_user_and_token_with_a_seeded_credential() {
        let events = Generator::new(3, 50).identity_events();
        assert_eq!(events.len(), 50 + 100);
        assert_eq!(events, Generator::new(3, 50).identity_events());
        let IdentityEvent::User(root) = &events[0] else {
            panic!("users first")
        };
        assert_eq!((root.id, root.role), (1, identity_codes::ROLE_ROOT));
        assert_eq!(
            root.access_token
                .as_ref()
                .map(|t| hash_access_token(t.expose())),
            Some(hash_access_token(&admin_access_token(3)))
        );
        for event in &events {
            let json = serde_json::to_vec(event).expect("serializes");
            assert!(parse_identity_message(&json, 4096).is_ok(), "{event:?}");
        }
    }

    #[test]
    fn keys_follow_the_contract() {
        let events = Generator::new(1, 2).identity_events();
        assert_eq!(identity_key(&events[0]), "user:1");
        assert_eq!(identity_key(&events[2]), "token:1");
    }
}
