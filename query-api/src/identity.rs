//! The auth identity cache: users and tokens looked up for authentication, kept for a short
//! TTL so that most requests cost no identity round trip while a disabled user or token is
//! still locked out within seconds (`--identity-cache-ttl-ms`).

use std::sync::Arc;
use std::time::Duration;

use logbus_projections::rows::{TokenRow, UserRow};
use moka::future::Cache;

use crate::error::DbError;
use crate::store::Store;

/// Users by access-token hash and tokens by key hash, each cached for the TTL (0: not cached).
#[derive(Debug, Clone)]
pub struct IdentityCache {
    store: Store,
    users: Option<Cache<String, Option<Arc<UserRow>>>>,
    tokens: Option<Cache<String, Option<Arc<TokenRow>>>>,
    owners: Option<Cache<i64, Option<Arc<UserRow>>>>,
}

impl IdentityCache {
    pub fn new(store: Store, ttl: Duration) -> Self {
        fn build<K, V>(ttl: Duration) -> Option<Cache<K, V>>
        where
            K: std::hash::Hash + Eq + Send + Sync + 'static,
            V: Clone + Send + Sync + 'static,
        {
            (!ttl.is_zero()).then(|| {
                Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(ttl)
                    .build()
            })
        }
        Self {
            store,
            users: build(ttl),
            tokens: build(ttl),
            owners: build(ttl),
        }
    }

    pub async fn user(&self, access_token_hash: &str) -> Result<Option<Arc<UserRow>>, DbError> {
        let load = async {
            Ok::<_, DbError>(
                self.store
                    .user_by_access_token(access_token_hash)
                    .await?
                    .map(Arc::new),
            )
        };
        match &self.users {
            None => load.await,
            Some(cache) => cache
                .try_get_with(access_token_hash.to_owned(), load)
                .await
                .map_err(|e| (*e).clone()),
        }
    }

    /// User `id` (a token's owner), by id.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<Arc<UserRow>>, DbError> {
        let load = async { Ok::<_, DbError>(self.store.user_by_id(id).await?.map(Arc::new)) };
        match &self.owners {
            None => load.await,
            Some(cache) => cache.try_get_with(id, load).await.map_err(|e| (*e).clone()),
        }
    }

    pub async fn token(&self, key_hash: &str) -> Result<Option<Arc<TokenRow>>, DbError> {
        let load =
            async { Ok::<_, DbError>(self.store.token_by_key(key_hash).await?.map(Arc::new)) };
        match &self.tokens {
            None => load.await,
            Some(cache) => cache
                .try_get_with(key_hash.to_owned(), load)
                .await
                .map_err(|e| (*e).clone()),
        }
    }
}
