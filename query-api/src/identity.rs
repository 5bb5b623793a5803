//! The auth identity cache: users and tokens looked up for authentication, kept for a short
//! TTL so that most requests cost no identity round trip while a disabled user or token is
//! still locked out within seconds (`--identity-cache-ttl-ms`).
//!
//! Only identities that exist are cached. An unknown credential is looked up again each time
//! (a cheap primary-key read, and [`crate::auth_throttle`] limits how often one client may
//! fail): cached, random credentials would evict real users from a full cache, and a user
//! published a moment after a failed attempt would stay locked out for the TTL.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use logbus_projections::rows::{TokenRow, UserRow};
use metrics::counter;
use moka::future::Cache;

use crate::error::DbError;
use crate::metrics::names;
use crate::store::Store;

/// Most identities of each kind kept.
const CAPACITY: u64 = 100_000;

/// Users by access-token hash and tokens by key hash, each cached for the TTL (0: not cached).
#[derive(Debug, Clone)]
pub struct IdentityCache {
    store: Store,
    users: Option<Cache<String, Arc<UserRow>>>,
    tokens: Option<Cache<String, Arc<TokenRow>>>,
    owners: Option<Cache<i64, Arc<UserRow>>>,
}

/// Why a load put nothing in the cache.
#[derive(Debug)]
enum Miss {
    Absent,
    Failed(DbError),
}

/// `key` from `cache`, or loaded by `load` and cached when it exists. Concurrent misses of
/// one key share one load. Counted as a miss of `kind` when this call ran `load` (also when
/// there is no cache), as a hit otherwise (a waiter on another call's load included).
async fn cached<K, V>(
    kind: &'static str,
    cache: Option<&Cache<K, Arc<V>>>,
    key: K,
    load: impl Future<Output = Result<Option<V>, DbError>>,
) -> Result<Option<Arc<V>>, DbError>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    let Some(cache) = cache else {
        counter!(names::CACHE_MISSES, "kind" => kind).increment(1);
        return Ok(load.await?.map(Arc::new));
    };
    let loaded = AtomicBool::new(false);
    let found = cache
        .try_get_with(key, async {
            loaded.store(true, Ordering::Relaxed);
            match load.await {
                Ok(Some(value)) => Ok(Arc::new(value)),
                Ok(None) => Err(Miss::Absent),
                Err(error) => Err(Miss::Failed(error)),
            }
        })
        .await;
    let counted = if loaded.load(Ordering::Relaxed) {
        names::CACHE_MISSES
    } else {
        names::CACHE_HITS
    };
    counter!(counted, "kind" => kind).increment(1);
    match found {
        Ok(value) => Ok(Some(value)),
        Err(miss) => match &*miss {
            Miss::Absent => Ok(None),
            Miss::Failed(error) => Err(error.clone()),
        },
    }
}

impl IdentityCache {
    pub fn new(store: Store, ttl: Duration) -> Self {
        fn build<K, V>(ttl: Duration) -> Option<Cache<K, V>>
        where
            K: Hash + Eq + Send + Sync + 'static,
            V: Clone + Send + Sync + 'static,
        {
            (!ttl.is_zero()).then(|| {
                Cache::builder()
                    .max_capacity(CAPACITY)
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
        let load = self.store.user_by_access_token(access_token_hash);
        cached(
            "user",
            self.users.as_ref(),
            access_token_hash.to_owned(),
            load,
        )
        .await
    }

    /// User `id` (a token's owner), by id.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<Arc<UserRow>>, DbError> {
        cached("owner", self.owners.as_ref(), id, self.store.user_by_id(id)).await
    }

    pub async fn token(&self, key_hash: &str) -> Result<Option<Arc<TokenRow>>, DbError> {
        let load = self.store.token_by_key(key_hash);
        cached("token", self.tokens.as_ref(), key_hash.to_owned(), load).await
    }
}
