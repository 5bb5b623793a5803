//! The identity lookups of authentication: the latest version of a user by access-token hash
//! and of a token by key hash ([`crate::identity`] caches them).
//!
//! A hash is found in the companion table ordered by it (migration 9), then the identity by
//! id: two primary-key reads, whatever the number of identities. The lookups are sent with
//! `force_primary_key`, so a schema that would make them scan fails loudly instead of making
//! every unknown credential (anyone can send one) cost a full scan.

use logbus_projections::rows::{TokenRow, UserRow};
use logbus_projections::tables;

use super::Store;
use crate::error::DbError;

impl Store {
    /// The latest version of the user holding this access token hash, if any.
    pub async fn user_by_access_token(&self, hash: &str) -> Result<Option<UserRow>, DbError> {
        self.latest_holding_hash(
            tables::USERS,
            "id, username, role, status, `group`, access_token_sha256, version",
            tables::USERS_BY_ACCESS_TOKEN,
            "access_token_sha256",
            hash,
            |user: &UserRow| &user.access_token_sha256,
        )
        .await
    }

    /// The latest version of user `id`, if any (the owner of a token: the table is ordered by
    /// id, so this reads one granule).
    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>, DbError> {
        let sql = format!(
            "SELECT id, username, role, status, `group`, access_token_sha256, version \
             FROM {} FINAL WHERE id = {{id:Int64}}",
            tables::USERS
        );
        let rows = self
            .timed(
                "user_by_id",
                self.client
                    .query(&sql)
                    .param("id", id)
                    .fetch_all::<UserRow>(),
            )
            .await?;
        Ok(rows.into_iter().next())
    }

    /// The latest version of the token with this key hash, if any.
    pub async fn token_by_key(&self, hash: &str) -> Result<Option<TokenRow>, DbError> {
        self.latest_holding_hash(
            tables::TOKENS,
            "id, user_id, name, key_sha256, status, version",
            tables::TOKENS_BY_KEY,
            "key_sha256",
            hash,
            |token: &TokenRow| &token.key_sha256,
        )
        .await
    }

    /// The latest version (FINAL) of the identity whose `hash_column` is `hash`, if any (its
    /// query's kind is the companion table `by_hash`).
    async fn latest_holding_hash<T>(
        &self,
        table: &str,
        columns: &str,
        by_hash: &'static str,
        hash_column: &str,
        hash: &str,
        stored_hash: fn(&T) -> &str,
    ) -> Result<Option<T>, DbError>
    where
        T: clickhouse::RowOwned + clickhouse::RowRead,
    {
        let sql = format!(
            "SELECT {columns} FROM {table} FINAL WHERE id IN \
             (SELECT id FROM {by_hash} WHERE {hash_column} = {{hash:String}})"
        );
        let query = self
            .client
            .query(&sql)
            .param("hash", hash)
            .with_setting("force_primary_key", "1");
        let rows = self.timed(by_hash, query.fetch_all::<T>()).await?;
        // An older version may have held the hash: only the latest version counts.
        Ok(rows.into_iter().find(|row| stored_hash(row) == hash))
    }
}
