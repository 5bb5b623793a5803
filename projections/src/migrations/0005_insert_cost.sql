-- logbus schema, version 5: cheaper inserts (ingest throughput is bound by the ClickHouse
-- engine's insert cost). Measured in-process on chDB 26.9, 400k benchmark events inserted in
-- 12.5k-row blocks, CPU seconds per row, three alternating repetitions each:
--   migrations 1-2 only                                  93-94k rows per CPU-second
--   migrations 1-4 without the content index (ZSTD(6))   74-75k
--   migrations 1-4 without the content index, ZSTD(3)    80-85k  (this migration)
--
-- 1. Drop the ngram bloom-filter index on lowerUTF8(content). On the benchmark's data (10M
--    rows over 7 days, alternating runs on the same parts) it let the rare-keyword search skip
--    1,152 of 1,232 granules, but checking it cost more than reading the content: common
--    keyword 169 -> 116 ms, rare keyword 259 -> 244 ms, numeric-type search 86 -> 32 ms without
--    it. It also took 1.2 B per row on disk and 6-15% of every insert's CPU.
-- 2. content and other back to ZSTD(3) (migration 3 set ZSTD(6)): level 6 saved 2.1 B per row
--    but cost about 12% of the insert CPU, and again at every merge.

ALTER TABLE logs DROP INDEX IF EXISTS idx_content
;
ALTER TABLE logs
    MODIFY COLUMN content CODEC(ZSTD(3)),
    MODIFY COLUMN other CODEC(ZSTD(3))
