-- logbus schema, version 2: ingest progress (batch intents) for exactly-once replays.
-- Written by logbus-ingest before each insert into logs; read on partition assignment so that a
-- replay after a crash cuts its batches at exactly the recorded offset boundaries (and so reuses
-- the same insert_deduplication_token). See docs/ingest.md.

CREATE TABLE IF NOT EXISTS ingest_batches
(
    consumer_group String COMMENT 'Kafka consumer group of the worker that wrote the batch',
    topic String COMMENT 'Source topic',
    partition Int32 COMMENT 'Source partition',
    first_offset Int64 COMMENT 'Offset of the first message of the batch',
    last_offset Int64 COMMENT 'Offset of the last message of the batch (inclusive)',
    batch_id UInt64 COMMENT 'Hash of topic, partition, first and last offset: the insert_deduplication_token and logs.ingest_batch',
    rows UInt32 COMMENT 'Rows the batch was about to insert',
    recorded_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the intent was recorded'
)
ENGINE = MergeTree
ORDER BY (consumer_group, topic, partition, first_offset)
TTL toDateTime(recorded_at) + INTERVAL 30 DAY
COMMENT 'Ingest batch intents, recorded before each insert into logs; only the ones beyond the committed offset matter'
