//! The state the handlers share: the store, the identity cache and the delete lock.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::identity::IdentityCache;
use crate::session::{NewApiSessions, SetupError};
use crate::store::Store;

/// Shared state of the handlers: cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    store: Store,
    identity: IdentityCache,
    delete_lock: tokio::sync::Mutex<()>,
    sessions: Option<NewApiSessions>,
}

impl AppState {
    /// State for `config`; connects lazily (the first query opens the connection).
    pub fn new(config: &Config) -> Result<Self, SetupError> {
        let client = config.clickhouse.client().with_setting(
            "max_execution_time",
            config.query_timeout().as_secs().to_string(),
        );
        let store =
            Store::new(client, config.query_timeout()).with_export_timeout(config.export_timeout());
        let state = Self::over(store, config.identity_cache_ttl());
        Ok(match &config.newapi_url {
            Some(url) if !url.trim().is_empty() => state.with_sessions(NewApiSessions::new(
                url.trim(),
                config.newapi_timeout(),
                config.identity_cache_ttl(),
            )?),
            _ => state,
        })
    }

    /// This state, also accepting new-api's session cookies as vouched for by `sessions`.
    pub fn with_sessions(self, sessions: NewApiSessions) -> Self {
        Self(Arc::new(Inner {
            store: self.0.store.clone(),
            identity: self.0.identity.clone(),
            delete_lock: tokio::sync::Mutex::new(()),
            sessions: Some(sessions),
        }))
    }

    /// State over an existing client (whose database is the logbus one).
    pub fn from_client(
        client: clickhouse::Client,
        query_timeout: Duration,
        identity_cache_ttl: Duration,
    ) -> Self {
        Self::over(Store::new(client, query_timeout), identity_cache_ttl)
    }

    fn over(store: Store, identity_cache_ttl: Duration) -> Self {
        Self(Arc::new(Inner {
            identity: IdentityCache::new(store.clone(), identity_cache_ttl),
            store,
            delete_lock: tokio::sync::Mutex::new(()),
            sessions: None,
        }))
    }

    /// new-api's session check, when `--newapi-url` is set.
    pub fn sessions(&self) -> Option<&NewApiSessions> {
        self.0.sessions.as_ref()
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
