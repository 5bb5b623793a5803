-- logbus schema, version 8: the lock that serialises retention deletes across API replicas.
--
-- chDB and a plain clickhouse-server without Keeper offer no compare-and-set, so the lock is an
-- append-only lease: a delete inserts a claim (its own random owner id, an expiry computed by
-- the server's clock), then reads the live claims back; it holds the lock only when no other
-- owner's claim is live, and otherwise withdraws its own and answers 409. Two deletes that
-- claim at the same moment both see each other and both withdraw: never two holders. The
-- holder renews its claim before each statement and releases it at the end; a holder that
-- died lapses at its expiry. Rows are kept a week for the record, then expire (TTL).
-- query-api's store/retention_lock.rs reads and writes it.

CREATE TABLE IF NOT EXISTS retention_lock
(
    owner UUID COMMENT 'The delete request that claims the lock (random per request)',
    seq UInt32 COMMENT 'Order of the owner''s rows: 0 claims, each renewal one more, the last may release',
    expires_at DateTime64(3, 'UTC') COMMENT 'The claim lapses at this server time unless renewed',
    released Bool COMMENT 'The owner gave the lock up (finished, failed or withdrew)',
    target DateTime('UTC') COMMENT 'The delete''s target_timestamp',
    admin_id Int64 COMMENT 'The admin user id who asked for the delete',
    recorded_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the row was written'
)
ENGINE = MergeTree
ORDER BY (owner, seq)
TTL toDateTime(recorded_at) + INTERVAL 7 DAY
COMMENT 'Leases of the retention delete (DELETE /api/log/): at most one live owner at a time'
