//! The state the handlers share: the store, the identity cache, the failed-authentication
//! throttle, the slot of the running delete and the live tail.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::auth_throttle::{AuthThrottle, ThrottleConfig};
use crate::config::{Config, DEFAULT_RETENTION_MIN_AGE_SECS};
use crate::error::DeleteBusy;
use crate::identity::IdentityCache;
use crate::session::{NewApiSessions, SetupError};
use crate::store::Store;
use crate::tail::{Tail, TailConfig};

/// Shared state of the handlers: cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    store: Store,
    identity: IdentityCache,
    /// The delete this process runs, if any (across replicas, the store's lock decides).
    running_delete: Arc<Mutex<Option<DeleteBusy>>>,
    retention_min_age_secs: u64,
    sessions: Option<NewApiSessions>,
    throttle: Arc<AuthThrottle>,
    tail: Tail,
}

/// This process's delete slot, taken until dropped.
#[derive(Debug)]
pub struct DeleteSlot(Arc<Mutex<Option<DeleteBusy>>>);

fn slot(slot: &Mutex<Option<DeleteBusy>>) -> MutexGuard<'_, Option<DeleteBusy>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for DeleteSlot {
    fn drop(&mut self) {
        slot(&self.0).take();
    }
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
        let mut state = Self::over(store, config.identity_cache_ttl());
        let inner = Arc::get_mut(&mut state.0).expect("not shared yet");
        inner.retention_min_age_secs = config.retention_min_age_secs;
        inner.throttle = Arc::new(AuthThrottle::new(&config.throttle));
        inner.tail = Tail::new(inner.store.clone(), config.tail.clone());
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
            running_delete: Default::default(),
            retention_min_age_secs: self.0.retention_min_age_secs,
            sessions: Some(sessions),
            throttle: self.0.throttle.clone(),
            tail: self.0.tail.clone(),
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
            tail: Tail::new(store.clone(), TailConfig::default()),
            store,
            running_delete: Default::default(),
            retention_min_age_secs: DEFAULT_RETENTION_MIN_AGE_SECS,
            sessions: None,
            throttle: Arc::new(AuthThrottle::new(&ThrottleConfig::default())),
        }))
    }

    /// new-api's session check, when `--newapi-url` is set.
    pub fn sessions(&self) -> Option<&NewApiSessions> {
        self.0.sessions.as_ref()
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The live tail: its shared reader and its streams' limits.
    pub fn tail(&self) -> &Tail {
        &self.0.tail
    }

    pub fn identity(&self) -> &IdentityCache {
        &self.0.identity
    }

    /// The budgets of failed authentications per client.
    pub fn throttle(&self) -> &AuthThrottle {
        &self.0.throttle
    }

    /// `--retention-min-age-secs`.
    pub fn retention_min_age_secs(&self) -> u64 {
        self.0.retention_min_age_secs
    }

    /// Takes this process's delete slot for `delete`, or says which delete holds it: a second
    /// delete is refused at once rather than queued, as one from another replica is.
    pub fn begin_delete(&self, delete: DeleteBusy) -> Result<DeleteSlot, DeleteBusy> {
        let mut running = slot(&self.0.running_delete);
        if let Some(other) = running.as_ref() {
            return Err(other.clone());
        }
        *running = Some(delete);
        Ok(DeleteSlot(self.0.running_delete.clone()))
    }
}
