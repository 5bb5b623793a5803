//! The lock that serialises retention deletes across API replicas: a lease in the
//! `retention_lock` table (migration 8 explains the protocol). Claim, then read back the live
//! claims: the lock is held only when no other owner's claim is live. Expiries are computed
//! by the server's clock, so the replicas' clocks do not matter.

use clickhouse::Row;
use logbus_projections::tables;
use serde::Deserialize;
use uuid::Uuid;

use super::Store;
use crate::error::{DbError, DeleteBusy};

/// A claim on the lock, held or being asked for.
#[derive(Debug)]
pub struct Lease {
    owner: Uuid,
    seq: u32,
    target: u32,
    admin_id: i64,
}

#[derive(Debug, Row, Deserialize)]
struct LiveClaim {
    target: u32,
    admin_id: i64,
}

impl Store {
    /// How long a claim lives without renewal: longer than any one statement may run (each is
    /// cut at the query timeout), and the holder renews before each statement.
    fn lease_ms(&self) -> u64 {
        let ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX / 4);
        ms.saturating_mul(2).saturating_add(10_000)
    }

    async fn write_claim(&self, lease: &Lease, released: bool) -> Result<(), DbError> {
        let sql = format!(
            "INSERT INTO {} (owner, seq, expires_at, released, target, admin_id) \
             SELECT toUUID({{owner:String}}), {{seq:UInt32}}, \
                    now64(3) + toIntervalMillisecond({{lease:UInt64}}), {{released:Bool}}, \
                    toDateTime({{target:UInt32}}, 'UTC'), {{admin:Int64}}",
            tables::RETENTION_LOCK
        );
        self.timed(
            "retention_lock_write",
            self.writer
                .query(&sql)
                .param("owner", lease.owner.to_string())
                .param("seq", lease.seq)
                .param("lease", self.lease_ms())
                .param("released", released)
                .param("target", lease.target)
                .param("admin", lease.admin_id)
                // Claims of one owner differ only by seq: never swallow one as a duplicate.
                .with_setting("insert_deduplicate", "0")
                .with_setting("async_insert", "0")
                .execute(),
        )
        .await
    }

    /// The live claim of another owner than `lease`'s, if any.
    async fn other_live_claim(&self, lease: &Lease) -> Result<Option<LiveClaim>, DbError> {
        let sql = format!(
            "SELECT toUInt32(argMax(target, seq)) AS target, argMax(admin_id, seq) AS admin_id \
             FROM {} GROUP BY owner \
             HAVING owner != toUUID({{owner:String}}) AND NOT argMax(released, seq) \
                AND argMax(expires_at, seq) > now64(3) \
             ORDER BY min(recorded_at) LIMIT 1",
            tables::RETENTION_LOCK
        );
        let claims = self
            .timed(
                "retention_lock_read",
                self.client
                    .query(&sql)
                    .param("owner", lease.owner.to_string())
                    .fetch_all::<LiveClaim>(),
            )
            .await?;
        Ok(claims.into_iter().next())
    }

    /// Claims the lock for a delete before `target` by `admin_id`: the lease, or who holds it.
    pub async fn claim_retention_lock(
        &self,
        target: u32,
        admin_id: i64,
    ) -> Result<Result<Lease, DeleteBusy>, DbError> {
        let lease = Lease {
            owner: Uuid::new_v4(),
            seq: 0,
            target,
            admin_id,
        };
        self.write_claim(&lease, false).await?;
        match self.other_live_claim(&lease).await {
            Ok(None) => Ok(Ok(lease)),
            Ok(Some(other)) => {
                self.release_retention_lock(lease).await;
                Ok(Err(DeleteBusy {
                    target: other.target,
                    admin_id: other.admin_id,
                }))
            }
            Err(error) => {
                self.release_retention_lock(lease).await;
                Err(error)
            }
        }
    }

    /// Extends the lease by [`Self::lease_ms`] from now.
    pub async fn renew_retention_lock(&self, lease: &mut Lease) -> Result<(), DbError> {
        lease.seq += 1;
        self.write_claim(lease, false).await
    }

    /// Gives the lock up. A failure is logged, not returned: the claim then lapses at its
    /// expiry, and the delete's own outcome is what the caller needs to hear.
    pub async fn release_retention_lock(&self, mut lease: Lease) {
        lease.seq += 1;
        if let Err(error) = self.write_claim(&lease, true).await {
            tracing::warn!(%error, owner = %lease.owner, "could not release the retention lock; it lapses at its expiry");
        }
    }
}
