-- logbus schema, version 10: automatic retention drops whole parts.
--
-- The worker applies the configured retention as TTLs on `logs` and `logs_minute` at start
-- (projections/src/ttl.rs). With ttl_only_drop_parts a part is dropped once all its rows are
-- past the TTL, instead of being rewritten without them: both tables are partitioned by day,
-- so a day leaves as a whole, at the cost of a file deletion rather than a merge.

ALTER TABLE logs MODIFY SETTING ttl_only_drop_parts = 1
;
ALTER TABLE logs_minute MODIFY SETTING ttl_only_drop_parts = 1
