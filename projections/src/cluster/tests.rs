use super::*;

const DB: &str = "logbus";

fn cluster() -> Cluster {
    Cluster::new("logs_cluster").expect("valid name")
}

/// Every statement of the cluster variant, schema record and database first.
fn all_ddl() -> Vec<String> {
    let c = cluster();
    let mut ddl = vec![create_database(DB, Some(&c)).expect("database")];
    ddl.extend(schema_migrations_ddl(DB, Some(&c)).expect("record"));
    for migration in MIGRATIONS {
        ddl.extend(migration_ddl(migration, DB, Some(&c)).expect("every migration has a variant"));
    }
    ddl
}

fn migration(version: u32) -> &'static Migration {
    MIGRATIONS
        .iter()
        .find(|m| m.version == version)
        .expect("known version")
}

fn ddl_of(version: u32) -> Vec<String> {
    migration_ddl(migration(version), DB, Some(&cluster())).expect("variant")
}

/// The text after a statement's column list (its clauses), for statements whose columns are
/// long.
fn clauses_of(statement: &str) -> &str {
    let open = statement.find('(').expect("column list");
    let close = open + matching_paren(&statement[open..]).expect("closed");
    statement[close + 1..].trim()
}

#[test]
fn the_single_server_variant_is_the_sql_as_written() {
    for m in MIGRATIONS {
        let ddl = migration_ddl(m, DB, None).expect("no cluster");
        assert_eq!(
            ddl,
            m.statements().collect::<Vec<_>>(),
            "migration {}",
            m.version
        );
    }
    assert_eq!(
        schema_migrations_ddl(DB, None).expect("record"),
        [SCHEMA_MIGRATIONS_DDL]
    );
    assert_eq!(
        create_database(DB, None).expect("db"),
        "CREATE DATABASE IF NOT EXISTS `logbus`"
    );
}

#[test]
fn a_sharded_table_is_a_replicated_local_table_under_a_distributed_one() {
    let ddl = ddl_of(1);
    assert!(
        ddl[0].starts_with("CREATE TABLE IF NOT EXISTS logs_local ON CLUSTER 'logs_cluster'\n(\n    event_id UUID COMMENT"),
        "{}",
        ddl[0]
    );
    assert_eq!(
        clauses_of(&ddl[0]),
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/logs_local', '{replica}')\n\
         PARTITION BY toYYYYMMDD(created_at)\n\
         ORDER BY (created_at, event_id)\n\
         SETTINGS replicated_deduplication_window = 10000\n\
         COMMENT 'Raw gateway usage logs, one row per request; partitioned by UTC day so retention drops whole partitions'"
    );
    assert_eq!(
        ddl[1],
        "CREATE TABLE IF NOT EXISTS logs ON CLUSTER 'logs_cluster' AS logs_local\n\
         ENGINE = Distributed('logs_cluster', 'logbus', logs_local, cityHash64(user_id))\n\
         COMMENT 'Raw gateway usage logs, one row per request; partitioned by UTC day so retention drops whole partitions'"
    );
    // Engine arguments are kept after the replication ones.
    assert!(
        clauses_of(&ddl[2]).starts_with(
            "ENGINE = ReplicatedSummingMergeTree('/clickhouse/tables/{shard}/{database}/logs_minute_local', '{replica}', (requests, quota, prompt_tokens, completion_tokens))\n"
        ),
        "{}",
        ddl[2]
    );
    assert!(ddl[3].starts_with("CREATE TABLE IF NOT EXISTS logs_minute ON CLUSTER 'logs_cluster' AS logs_minute_local\nENGINE = Distributed('logs_cluster', 'logbus', logs_minute_local, cityHash64(user_id))"));
}

#[test]
fn the_rollup_view_runs_on_each_shard() {
    let view = &ddl_of(1)[4];
    assert!(
        view.starts_with("CREATE MATERIALIZED VIEW IF NOT EXISTS logs_minute_mv ON CLUSTER 'logs_cluster' TO logs_minute_local\nAS SELECT\n    toStartOfMinute(created_at) AS minute,"),
        "{view}"
    );
    assert!(
        view.contains("\nFROM logs_local\nGROUP BY minute, type, user_id,"),
        "{view}"
    );
}

#[test]
fn small_tables_are_replicated_on_every_server_under_their_own_names() {
    let ddl = ddl_of(1);
    assert!(clauses_of(&ddl[5]).starts_with(
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/users', '{replica}', version)\nORDER BY id\n"
    ));
    assert_eq!(
        ddl_of(2),
        [
            "CREATE TABLE IF NOT EXISTS ingest_batches ON CLUSTER 'logs_cluster'\n(\n    consumer_group String COMMENT 'Kafka consumer group of the worker that wrote the batch',\n    topic String COMMENT 'Source topic',\n    partition Int32 COMMENT 'Source partition',\n    first_offset Int64 COMMENT 'Offset of the first message of the batch',\n    last_offset Int64 COMMENT 'Offset of the last message of the batch (inclusive)',\n    batch_id UInt64 COMMENT 'Hash of topic, partition, first and last offset: the insert_deduplication_token and logs.ingest_batch',\n    rows UInt32 COMMENT 'Rows the batch was about to insert',\n    recorded_at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the intent was recorded'\n)\n\
             ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{database}/ingest_batches', '{replica}')\n\
             ORDER BY (consumer_group, topic, partition, first_offset)\n\
             TTL toDateTime(recorded_at) + INTERVAL 30 DAY\n\
             COMMENT 'Ingest batch intents, recorded before each insert into logs; only the ones beyond the committed offset matter'"
        ]
    );
    assert_eq!(
        schema_migrations_ddl(DB, Some(&cluster())).expect("record"),
        [
            "CREATE TABLE IF NOT EXISTS schema_migrations ON CLUSTER 'logs_cluster'\n(\n    version UInt32 COMMENT 'Migration number',\n    name String COMMENT 'Migration name',\n    checksum String COMMENT 'SHA-256 of the migration SQL',\n    state LowCardinality(String) COMMENT 'started, then applied once every statement ran',\n    at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the state was recorded'\n)\n\
          ENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{database}/schema_migrations', '{replica}')\n\
          ORDER BY (version, at)\n\
          COMMENT 'Schema versions applied by logbus migrations'"
        ]
    );
    assert_eq!(
        create_database(DB, Some(&cluster())).expect("db"),
        "CREATE DATABASE IF NOT EXISTS `logbus` ON CLUSTER 'logs_cluster'"
    );
    let identity_view = &ddl_of(9)[1];
    assert_eq!(
        identity_view,
        "CREATE MATERIALIZED VIEW IF NOT EXISTS users_by_access_token_mv ON CLUSTER 'logs_cluster' TO users_by_access_token\nAS SELECT access_token_sha256, id FROM users WHERE access_token_sha256 != ''"
    );
    // The backfill runs once: replication brings its rows everywhere.
    assert_eq!(
        ddl_of(9)[4],
        "INSERT INTO users_by_access_token SELECT access_token_sha256, id FROM users WHERE access_token_sha256 != ''"
    );
}

#[test]
fn alters_run_on_the_storage_table_of_every_server() {
    assert_eq!(
        ddl_of(6),
        [
            "ALTER TABLE logs_local ON CLUSTER 'logs_cluster' MODIFY SETTING min_compress_block_size = 16384, max_compress_block_size = 262144"
        ]
    );
    assert_eq!(
        ddl_of(5),
        [
            "ALTER TABLE logs_local ON CLUSTER 'logs_cluster' DROP INDEX IF EXISTS idx_content",
            "ALTER TABLE logs_local ON CLUSTER 'logs_cluster'\n    MODIFY COLUMN content CODEC(ZSTD(3)),\n    MODIFY COLUMN other CODEC(ZSTD(3))",
        ]
    );
    let comments = ddl_of(7);
    assert!(comments[0].starts_with("ALTER TABLE logs_local ON CLUSTER 'logs_cluster' COMMENT COLUMN ingest_batch 'Ingest batch that wrote the row: "));
    assert!(comments[1].starts_with(
        "ALTER TABLE ingest_batches ON CLUSTER 'logs_cluster' COMMENT COLUMN batch_id "
    ));
    let projections = ddl_of(4);
    assert_eq!(
        projections[0],
        "ALTER TABLE logs_local ON CLUSTER 'logs_cluster' MODIFY SETTING lightweight_mutation_projection_mode = 'rebuild'"
    );
    assert_eq!(
        projections[4],
        "ALTER TABLE logs_local ON CLUSTER 'logs_cluster' MATERIALIZE PROJECTION stat_hour"
    );
}

#[test]
fn every_statement_of_the_variant_is_clustered_and_replicated() {
    let ddl = all_ddl();
    let mut locals = Vec::new();
    let mut distributed = Vec::new();
    for statement in &ddl {
        let head = statement.lines().next().unwrap_or_default();
        if head.starts_with("CREATE") || head.starts_with("ALTER") {
            assert!(head.contains(" ON CLUSTER 'logs_cluster'"), "{head}");
        } else {
            assert!(head.starts_with("INSERT INTO "), "{head}");
        }
        assert!(!statement.contains("non_replicated_"), "{statement}");
        let words = top_level_words(statement);
        for (i, word) in words.iter().enumerate() {
            if word.is("ENGINE") {
                let engine = words[i + 1].text;
                assert!(
                    (engine.starts_with("Replicated") && engine.ends_with("MergeTree"))
                        || engine == "Distributed",
                    "{engine} in {head}"
                );
                // CREATE TABLE IF NOT EXISTS <name>
                let name = words[5].text;
                if engine == "Distributed" {
                    distributed.push((name, statement.clone()));
                } else {
                    locals.push(name);
                }
            }
        }
    }
    assert_eq!(
        distributed.iter().map(|d| d.0).collect::<Vec<_>>(),
        SHARDED,
        "one Distributed table per sharded table, under its own name"
    );
    for (name, statement) in &distributed {
        let local = format!("{name}_local");
        assert!(locals.contains(&local.as_str()), "{local} of {statement}");
        assert!(
            statement.contains(&format!(" AS {local}\n"))
                && statement.contains(&format!(", {local}, {SHARDING_KEY})")),
            "{statement}"
        );
    }
    // Reads keep their names: every table of the single-server schema exists in the cluster.
    let single = MIGRATIONS
        .iter()
        .flat_map(|m| migration_ddl(m, DB, None).expect("single"))
        .filter_map(|s| {
            after_keywords(&s, &["CREATE", "TABLE", "IF", "NOT", "EXISTS"])
                .and_then(|r| identifier(r).map(|(n, _)| n.to_owned()))
        })
        .collect::<Vec<_>>();
    for table in single {
        let created = locals.contains(&table.as_str()) || distributed.iter().any(|d| d.0 == table);
        assert!(created, "{table}");
    }
}

#[test]
fn statements_without_a_rule_are_refused() {
    let c = cluster();
    let refused = |sql: &str| {
        let error = statement_ddl(sql, DB, Some(&c)).expect_err(sql);
        assert!(matches!(error, Error::ClusterVariant { .. }), "{error}");
    };
    refused("DROP TABLE logs");
    refused("ALTER TABLE logs ADD COLUMN x UInt8");
    refused("ALTER TABLE logs MODIFY COLUMN quota Int32");
    refused("ALTER TABLE logs MODIFY SETTING a = 1, ADD COLUMN x UInt8");
    refused("INSERT INTO logs SELECT * FROM logs");
    refused("CREATE TABLE IF NOT EXISTS t (a UInt8) ENGINE = Memory");
    refused("CREATE TABLE IF NOT EXISTS t (a UInt8) ENGINE = ReplicatedMergeTree ORDER BY a");
    refused("CREATE TABLE IF NOT EXISTS logs (a UInt8) ENGINE = MergeTree ORDER BY a");
    refused("CREATE TABLE t (a UInt8) ENGINE = MergeTree ORDER BY a");
    refused("CREATE MATERIALIZED VIEW IF NOT EXISTS v TO logs_minute AS SELECT * FROM users");
    refused("CREATE MATERIALIZED VIEW IF NOT EXISTS v TO t AS SELECT * FROM a JOIN b USING x");
    refused("CREATE MATERIALIZED VIEW IF NOT EXISTS v TO t AS SELECT * FROM (SELECT 1)");
    // A keyword inside a literal or comment is not a clause or an action.
    let ddl = statement_ddl(
        "-- head\nCREATE TABLE IF NOT EXISTS t (a UInt8 COMMENT 'ENGINE = Memory, ORDER BY') ENGINE = MergeTree ORDER BY a",
        DB,
        Some(&c),
    )
    .expect("variant");
    assert_eq!(
        ddl,
        [
            "CREATE TABLE IF NOT EXISTS t ON CLUSTER 'logs_cluster'\n(a UInt8 COMMENT 'ENGINE = Memory, ORDER BY')\nENGINE = ReplicatedMergeTree('/clickhouse/tables/all/{database}/t', '{replica}')\nORDER BY a"
        ]
    );
}

#[test]
fn names_spliced_into_ddl_are_validated() {
    for bad in ["", "a-b", "a'b", "1c"] {
        assert!(
            matches!(Cluster::new(bad), Err(Error::InvalidClusterName(_))),
            "{bad:?}"
        );
    }
    assert!(migration_ddl(migration(1), "a'b", Some(&cluster())).is_err());
}

#[test]
fn the_script_lists_every_migration_in_order() {
    let script = script(DB, Some(&cluster())).expect("script");
    let mut at = 0;
    for m in MIGRATIONS {
        let header = format!("-- migration {}: {}\n", m.version, m.name);
        let found = script[at..]
            .find(&header)
            .expect("each migration once, in order");
        at += found + header.len();
    }
    let statements = script
        .split("\n;\n")
        .filter(|s| !s.trim().is_empty())
        .count();
    assert_eq!(statements, all_ddl().len());
}
