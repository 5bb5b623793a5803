-- logbus schema, version 7: corrects the comments of the batch-id columns. Migrations 1 and 2
-- described the batch id as a hash of topic, partition and offsets only; it also hashes the
-- batch's first and last payloads, so that a recreated topic that reuses offsets never
-- collides with old batches (ingest's batch module computes it). Comment changes are metadata
-- only.

ALTER TABLE logs COMMENT COLUMN ingest_batch 'Ingest batch that wrote the row: the first 8 bytes of SHA-256 over topic, partition, first and last offset and the SHA-256 of the first and last payloads; lets a replayed batch recognise its own rows'
;
ALTER TABLE ingest_batches COMMENT COLUMN batch_id 'The batch id (see logs.ingest_batch); the batch inserts under insert_deduplication_token logbus-<batch_id as 16 hex digits>'
