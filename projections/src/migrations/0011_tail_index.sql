-- logbus schema, version 11: a min-max index on `logs.ingested_at` for the live tail.
--
-- The tail (query-api/src/tail) reads the rows that reached ClickHouse after a cursor,
-- `ingested_at > t`, whatever their `created_at`: a late or back-filled event is as new to the
-- tail as a fresh one. `ingested_at` is not in the sort key, so without this index each poll
-- would read the column of every part. Rows are written in ingest order, so a granule's
-- min-max range is narrow and the parts and granules written before the cursor are skipped:
-- a poll reads about the granules written since the previous one. It costs 16 bytes per
-- granule of 8192 rows and nothing measurable per insert. The MATERIALIZE builds it for
-- the parts written before this migration (a background mutation).

ALTER TABLE logs ADD INDEX IF NOT EXISTS idx_ingested_at ingested_at TYPE minmax GRANULARITY 1
;
ALTER TABLE logs MATERIALIZE INDEX idx_ingested_at
