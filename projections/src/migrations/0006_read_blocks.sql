-- logbus schema, version 6: smaller compression blocks in `logs`.
--
-- Search results and token lookups read a few full rows scattered over the table. Each row
-- costs, per column, the decompression of the whole compressed block holding it; with the
-- default blocks (64 KiB to 1 MiB uncompressed) that is most of a search's time once the
-- content scan itself is cheap. Measured on the benchmark's 10M rows (two copies of the same
-- rows, 37 parts each, chDB 26.9, full rows through chfront, p50 of 5):
--   rare-keyword search (84 rows)         99 -> 86 ms
--   token lookup (1000 rows)              250 -> 230 ms
--   common-keyword search, page 500       unchanged
--   storage                               +0.4 B per row
-- New parts (inserts and merges) use the new block sizes; existing parts keep theirs until
-- they are merged. Finer granules (index_granularity 2048) would halve the rare-keyword search
-- again, but that setting is fixed when a table is created (see docs/api.md).

ALTER TABLE logs MODIFY SETTING min_compress_block_size = 16384, max_compress_block_size = 262144
