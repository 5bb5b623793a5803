//! Users and tokens: each poll reads both tables whole and publishes what changed since the
//! last poll, with a version higher than any published before ([`IdentityTracker`], pure), so
//! that logbus keeps the newest. A ban, a soft delete, an expiry or an exhausted quota changes
//! the published status; a row that disappears (a hard delete) is published disabled.

use std::collections::HashMap;

use logbus_projections::identity::IdentityEvent;
use logbus_projections::rows::identity_codes::STATUS_DISABLED;

use crate::Error;
use crate::mapping::{disabled, identity_key, with_version};
use crate::progress::Stats;
use crate::publish::{Publisher, Sent};
use crate::source::Source;

/// The identities published so far (version 0 in the map: what is compared) and the version
/// of the last change.
#[derive(Debug, Default)]
pub struct IdentityTracker {
    published: HashMap<String, IdentityEvent>,
    version: u64,
}

fn status(event: &IdentityEvent) -> i32 {
    match event {
        IdentityEvent::User(u) => u.status,
        IdentityEvent::Token(t) => t.status,
    }
}

impl IdentityTracker {
    /// A tracker whose next version is above `floor` (the checkpoint's last version).
    pub fn new(floor: u64) -> Self {
        Self {
            published: HashMap::new(),
            version: floor,
        }
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The events to publish for this snapshot of the tables (events at version 0), read at
    /// `now_ms`: new and changed identities, and disabled copies of vanished ones. All carry
    /// one version, above every earlier one even if the clock went back.
    pub fn changes(&mut self, snapshot: Vec<IdentityEvent>, now_ms: u64) -> Vec<IdentityEvent> {
        let version = now_ms.max(self.version + 1);
        let mut current: HashMap<String, IdentityEvent> = HashMap::with_capacity(snapshot.len());
        let mut out = Vec::new();
        for event in snapshot {
            let key = identity_key(&event);
            if self.published.get(&key) != Some(&event) {
                out.push(with_version(&event, version));
            }
            current.insert(key, event);
        }
        for (key, event) in &self.published {
            if !current.contains_key(key) {
                let gone = disabled(event);
                if status(event) != STATUS_DISABLED {
                    out.push(with_version(&gone, version));
                }
                current.insert(key.clone(), gone);
            }
        }
        self.published = current;
        if !out.is_empty() {
            self.version = version;
        }
        out
    }
}

fn now() -> (i64, u64) {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (elapsed.as_secs() as i64, elapsed.as_millis() as u64)
}

/// Reads users and tokens from `source` and publishes what changed to `topic`, waiting for
/// the broker's acknowledgements.
pub async fn poll(
    tracker: &mut IdentityTracker,
    source: &Source,
    publisher: &Publisher,
    topic: &str,
    stats: &mut Stats,
) -> Result<(), Error> {
    let users = source.users().await?;
    let tokens = source.tokens().await?;
    let (now_secs, now_ms) = now();
    stats.users_read += users.len() as u64;
    stats.tokens_read += tokens.len() as u64;
    let snapshot: Vec<IdentityEvent> = users
        .iter()
        .map(|u| u.identity(0))
        .chain(tokens.iter().map(|t| t.identity(now_secs, 0)))
        .collect();
    let changes = tracker.changes(snapshot, now_ms);
    let mut deliveries = Vec::with_capacity(changes.len());
    for event in &changes {
        let payload = serde_json::to_vec(event).expect("identity events serialize");
        match publisher
            .send(topic, &identity_key(event), &payload)
            .await?
        {
            Sent::Queued(delivery) => deliveries.push(delivery),
            Sent::TooLarge => tracing::error!(
                key = identity_key(event),
                "identity event too large for Kafka"
            ),
        }
        match event {
            IdentityEvent::User(_) => stats.users_published += 1,
            IdentityEvent::Token(_) => stats.tokens_published += 1,
        }
    }
    Publisher::settle(deliveries).await?;
    if !changes.is_empty() {
        tracing::debug!(
            changes = changes.len(),
            version = tracker.version(),
            "identities published"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use logbus_projections::identity::{TokenIdentity, UserIdentity};

    use super::*;

    fn user(id: i64, status: i32) -> IdentityEvent {
        IdentityEvent::User(UserIdentity {
            id,
            username: format!("u{id}"),
            role: 1,
            status,
            group: "default".into(),
            access_token_sha256: Some("a".repeat(64)),
            access_token: None,
            version: 0,
        })
    }

    fn token(id: i64, status: i32) -> IdentityEvent {
        IdentityEvent::Token(TokenIdentity {
            id,
            user_id: 1,
            name: "t".into(),
            key_sha256: Some("b".repeat(64)),
            key: None,
            status,
            version: 0,
        })
    }

    fn versions(events: &[IdentityEvent]) -> Vec<(String, u64, i32)> {
        events
            .iter()
            .map(|e| match e {
                IdentityEvent::User(u) => (identity_key(e), u.version, u.status),
                IdentityEvent::Token(t) => (identity_key(e), t.version, t.status),
            })
            .collect()
    }

    #[test]
    fn only_changes_are_published_each_with_a_higher_version() {
        let mut tracker = IdentityTracker::new(0);
        let first = tracker.changes(vec![user(1, 1), token(7, 1)], 1_000);
        assert_eq!(
            versions(&first),
            vec![("user:1".into(), 1_000, 1), ("token:7".into(), 1_000, 1)]
        );
        assert!(
            tracker
                .changes(vec![user(1, 1), token(7, 1)], 2_000)
                .is_empty()
        );
        // The user is banned; the clock went back meanwhile: the version still grows.
        let banned = tracker.changes(vec![user(1, 2), token(7, 1)], 500);
        assert_eq!(versions(&banned), vec![("user:1".into(), 1_001, 2)]);
        assert_eq!(tracker.version(), 1_001);
    }

    #[test]
    fn a_vanished_identity_is_disabled_once() {
        let mut tracker = IdentityTracker::new(5_000);
        tracker.changes(vec![user(1, 1), token(7, 1)], 1_000);
        let gone = tracker.changes(vec![user(1, 1)], 2_000);
        assert_eq!(versions(&gone), vec![("token:7".into(), 5_002, 2)]);
        assert!(tracker.changes(vec![user(1, 1)], 3_000).is_empty());
        // It comes back (a restore): published again, enabled.
        let back = tracker.changes(vec![user(1, 1), token(7, 1)], 9_000);
        assert_eq!(versions(&back), vec![("token:7".into(), 9_000, 1)]);
    }
}
