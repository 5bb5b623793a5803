-- logbus schema, version 1: raw log table, per-minute rollup, identity tables.
-- Statements are separated by a line holding only ';' and are idempotent (IF NOT EXISTS),
-- so a half-applied migration can be resumed safely.

CREATE TABLE IF NOT EXISTS logs
(
    event_id UUID COMMENT 'Stable identity of the log event: the producer''s event_id, or a UUIDv5 derived from topic, partition, offset and position in the message',
    created_at DateTime('UTC') COMMENT 'When the gateway handled the request, unix seconds (new-api created_at)',
    type UInt8 COMMENT 'Log type: 1 top-up, 2 consume, 3 manage, 4 system, 5 error, 6 refund, 7 login',
    user_id Int64 COMMENT 'Gateway user id (new-api users.id)',
    username LowCardinality(String) COMMENT 'Username at the time of the request',
    token_id Int64 COMMENT 'API token id (new-api tokens.id); 0 when the request used no token',
    token_name LowCardinality(String) COMMENT 'API token name at the time of the request',
    model_name LowCardinality(String) COMMENT 'Model requested, e.g. gpt-4o',
    quota Int64 COMMENT 'Quota charged for the request, in gateway quota units (500000 = 1 USD in new-api defaults)',
    prompt_tokens Int64 COMMENT 'Prompt (input) tokens',
    completion_tokens Int64 COMMENT 'Completion (output) tokens',
    use_time Int32 COMMENT 'Request duration in seconds',
    is_stream Bool COMMENT 'Whether the response was streamed',
    channel_id Int64 COMMENT 'Upstream channel id (new-api channels.id); the API calls it channel',
    channel_name LowCardinality(String) COMMENT 'Upstream channel name (admin only)',
    `group` LowCardinality(String) COMMENT 'User group used for pricing, e.g. default, vip',
    ip String COMMENT 'Client IP address as recorded by the gateway (admin only)',
    request_id String COMMENT 'Gateway request id',
    upstream_request_id String COMMENT 'Request id returned by the upstream provider',
    content String CODEC(ZSTD(3)) COMMENT 'Free-text log message (searchable, case-insensitive substring)',
    other String CODEC(ZSTD(3)) COMMENT 'Extra details as a JSON object serialized to a string (ratios, admin_info, audit_info, ...)',
    ingest_batch UInt64 COMMENT 'Ingest batch that wrote the row (hash of topic, partition and offset range); lets a replayed batch recognise its own rows',
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the row reached ClickHouse (freshness measurements)',
    INDEX idx_content lowerUTF8(content) TYPE ngrambf_v1(3, 65536, 3, 0) GRANULARITY 1,
    INDEX idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_request_id request_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_token_id token_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(created_at)
ORDER BY (created_at, event_id)
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Raw gateway usage logs, one row per request; partitioned by UTC day so retention drops whole partitions'
;
CREATE TABLE IF NOT EXISTS logs_minute
(
    minute DateTime('UTC') COMMENT 'Start of the UTC minute the requests fall in',
    type UInt8 COMMENT 'Log type, as in logs.type',
    user_id Int64 COMMENT 'Gateway user id',
    username LowCardinality(String) COMMENT 'Username at the time of the requests',
    token_id Int64 COMMENT 'API token id',
    token_name LowCardinality(String) COMMENT 'API token name',
    model_name LowCardinality(String) COMMENT 'Model name',
    channel_id Int64 COMMENT 'Upstream channel id',
    `group` LowCardinality(String) COMMENT 'User group',
    requests UInt64 COMMENT 'Number of log rows',
    quota Int64 COMMENT 'Sum of quota',
    prompt_tokens Int64 COMMENT 'Sum of prompt tokens',
    completion_tokens Int64 COMMENT 'Sum of completion tokens'
)
ENGINE = SummingMergeTree((requests, quota, prompt_tokens, completion_tokens))
PARTITION BY toYYYYMMDD(minute)
ORDER BY (minute, type, user_id, token_id, model_name, channel_id, `group`, username, token_name)
SETTINGS non_replicated_deduplication_window = 10000
COMMENT 'Per-minute rollup of logs, filled by logs_minute_mv. Rows of one key may be split until merged: always aggregate with sum() and GROUP BY'
;
CREATE MATERIALIZED VIEW IF NOT EXISTS logs_minute_mv TO logs_minute
AS SELECT
    toStartOfMinute(created_at) AS minute,
    type,
    user_id,
    username,
    token_id,
    token_name,
    model_name,
    channel_id,
    `group`,
    count() AS requests,
    sum(quota) AS quota,
    sum(prompt_tokens) AS prompt_tokens,
    sum(completion_tokens) AS completion_tokens
FROM logs
GROUP BY minute, type, user_id, username, token_id, token_name, model_name, channel_id, `group`
;
CREATE TABLE IF NOT EXISTS users
(
    id Int64 COMMENT 'Gateway user id',
    username String COMMENT 'Username',
    role Int32 COMMENT 'Role: 1 user, 10 admin, 100 root',
    status Int32 COMMENT 'Status: 1 enabled, 2 disabled',
    `group` String COMMENT 'User group',
    access_token_sha256 String COMMENT 'SHA-256 hex of the user''s system access token (the plain token is never stored)',
    version UInt64 COMMENT 'Identity version; the highest version of an id wins',
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When this version reached ClickHouse'
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id
COMMENT 'Gateway users, from the gateway.identity topic. Read with FINAL (or argMax by version)'
;
CREATE TABLE IF NOT EXISTS tokens
(
    id Int64 COMMENT 'API token id',
    user_id Int64 COMMENT 'Owner user id',
    name String COMMENT 'Token name',
    key_sha256 String COMMENT 'SHA-256 hex of the token key without its sk- prefix (the plain key is never stored)',
    status Int32 COMMENT 'Status: 1 enabled, 2 disabled (other values: not usable)',
    version UInt64 COMMENT 'Identity version; the highest version of an id wins',
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When this version reached ClickHouse'
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id
COMMENT 'Gateway API tokens, from the gateway.identity topic. Read with FINAL (or argMax by version)'
