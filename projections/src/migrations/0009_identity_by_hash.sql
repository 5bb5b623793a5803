-- logbus schema, version 9: identities found by their credential hash in one granule.
--
-- Authentication looks a user up by the hash of its access token and a token by the hash of
-- its key, but `users` and `tokens` are ordered by id: every lookup scanned the whole hash
-- column, and an unknown credential (anyone can send one) cost as much as a known one. These
-- companion tables hold only (hash, id), ordered by hash, so a lookup reads one granule of
-- them and then one granule of the identity table by id (query-api's store/identities.rs,
-- which sends the lookup with force_primary_key so that a scan is an error, not a slowdown).
--
-- A hash's row outlives the identity version that held it (a rotated token): the lookup keeps
-- only the latest version of each id and checks that it still holds the hash. Duplicate rows
-- (a retried insert, a resumed migration re-running the backfill) are merged away and are
-- harmless meanwhile. The views come before the backfill so that no version written while
-- this migration runs is missed.

CREATE TABLE IF NOT EXISTS users_by_access_token
(
    access_token_sha256 String COMMENT 'SHA-256 hex of an access token some version of the user held',
    id Int64 COMMENT 'Gateway user id'
)
ENGINE = ReplacingMergeTree
ORDER BY (access_token_sha256, id)
COMMENT 'Which users held an access token hash: the index of authentication (see users)'
;
CREATE MATERIALIZED VIEW IF NOT EXISTS users_by_access_token_mv TO users_by_access_token
AS SELECT access_token_sha256, id FROM users WHERE access_token_sha256 != ''
;
CREATE TABLE IF NOT EXISTS tokens_by_key
(
    key_sha256 String COMMENT 'SHA-256 hex of a token key some version of the token held',
    id Int64 COMMENT 'API token id'
)
ENGINE = ReplacingMergeTree
ORDER BY (key_sha256, id)
COMMENT 'Which tokens held a key hash: the index of the token lookup (see tokens)'
;
CREATE MATERIALIZED VIEW IF NOT EXISTS tokens_by_key_mv TO tokens_by_key
AS SELECT key_sha256, id FROM tokens WHERE key_sha256 != ''
;
INSERT INTO users_by_access_token SELECT access_token_sha256, id FROM users WHERE access_token_sha256 != ''
;
INSERT INTO tokens_by_key SELECT key_sha256, id FROM tokens WHERE key_sha256 != ''
