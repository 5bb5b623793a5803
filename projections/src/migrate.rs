//! Versioned, idempotent schema migrations recorded in `schema_migrations`.
//!
//! Each migration writes a `started` row before its first statement and an `applied` row after
//! its last. A `started` row without an `applied` one means a previous run died half-way: that
//! is reported instead of silently re-run, unless the caller asks to resume (every statement is
//! idempotent, so resuming is safe once the cause is understood).

use clickhouse::{Client, Row};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::cluster::{self, Cluster};
use crate::{Error, Result, tables, validate_database_name};

/// The record of applied migrations, created before the first one (and transformed like the
/// migrations in a cluster: [`crate::cluster`]).
pub(crate) const SCHEMA_MIGRATIONS_DDL: &str = "CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32 COMMENT 'Migration number',
    name String COMMENT 'Migration name',
    checksum String COMMENT 'SHA-256 of the migration SQL',
    state LowCardinality(String) COMMENT 'started, then applied once every statement ran',
    at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the state was recorded'
)
ENGINE = MergeTree
ORDER BY (version, at)
COMMENT 'Schema versions applied by logbus migrations'";

#[derive(Debug)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// One [`Migration`] from `migrations/<file>`; the file name is the version and the name.
macro_rules! migration {
    ($version:literal, $name:literal, $file:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("migrations/", $file)),
        }
    };
}

pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "initial", "0001_initial.sql"),
    migration!(2, "ingest_batches", "0002_ingest_batches.sql"),
    migration!(3, "codecs", "0003_codecs.sql"),
    migration!(4, "stat_projections", "0004_stat_projections.sql"),
    migration!(5, "insert_cost", "0005_insert_cost.sql"),
    migration!(6, "read_blocks", "0006_read_blocks.sql"),
    migration!(7, "column_comments", "0007_column_comments.sql"),
    migration!(8, "retention_lock", "0008_retention_lock.sql"),
    migration!(9, "identity_by_hash", "0009_identity_by_hash.sql"),
    migration!(
        10,
        "retention_drops_parts",
        "0010_retention_drops_parts.sql"
    ),
    migration!(11, "tail_index", "0011_tail_index.sql"),
    migration!(
        12,
        "dashboard_projections",
        "0012_dashboard_projections.sql"
    ),
];

impl Migration {
    pub fn checksum(&self) -> String {
        hex::encode(Sha256::digest(self.sql.as_bytes()))
    }

    /// Statements are separated by a line holding only `;`, so that `;` inside comments or
    /// string literals never splits a statement.
    pub fn statements(&self) -> impl Iterator<Item = &'static str> {
        self.sql
            .split("\n;\n")
            .map(str::trim)
            .filter(|statement| !statement.is_empty())
    }
}

#[derive(Debug, Default, Clone)]
pub struct MigrateOptions {
    pub resume_half_applied: bool,
    /// Apply the cluster variant of every statement ([`crate::cluster`]) on this cluster;
    /// `None`: one server, the SQL as written.
    pub cluster: Option<Cluster>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct MigrationReport {
    pub applied: Vec<u32>,
    pub already_applied: Vec<u32>,
}

#[derive(Debug, Row, Deserialize)]
struct RecordedMigration {
    version: u32,
    name: String,
    checksum: String,
    state: String,
}

/// Creates `database` if needed and applies every migration it lacks.
///
/// `client` may point at any database: the migrations run in `database`.
pub async fn migrate(
    client: &Client,
    database: &str,
    options: MigrateOptions,
) -> Result<MigrationReport> {
    validate_database_name(database)?;
    let cluster = options.cluster.as_ref();
    // Every statement is derived before the first runs, so that a statement without a
    // cluster rule stops the run before it changed anything.
    let ddl = crate::MIGRATIONS
        .iter()
        .map(|m| cluster::migration_ddl(m, database, cluster))
        .collect::<Result<Vec<_>>>()?;
    check_topology(client, database, cluster).await?;
    client
        .query(&cluster::create_database(database, cluster)?)
        .execute()
        .await?;
    let client = client.clone().with_database(database);
    for statement in cluster::schema_migrations_ddl(database, cluster)? {
        client.query(&statement).execute().await?;
    }

    let recorded = client
        .query(&format!(
            "SELECT version, argMax(name, at) AS name, argMax(checksum, at) AS checksum,
                    if(countIf(state = 'applied') > 0, 'applied', 'started') AS state
             FROM {} GROUP BY version ORDER BY version",
            tables::SCHEMA_MIGRATIONS
        ))
        .fetch_all::<RecordedMigration>()
        .await?;

    if let Some(unknown) = recorded
        .iter()
        .find(|r| !MIGRATIONS.iter().any(|m| m.version == r.version))
    {
        return Err(Error::UnknownMigration(unknown.version));
    }

    let mut report = MigrationReport::default();
    for (migration, statements) in MIGRATIONS.iter().zip(&ddl) {
        let checksum = migration.checksum();
        match recorded.iter().find(|r| r.version == migration.version) {
            Some(r) if r.state == "applied" => {
                if r.checksum != checksum {
                    return Err(Error::ChecksumMismatch {
                        version: r.version,
                        name: r.name.clone(),
                        applied: r.checksum.clone(),
                        expected: checksum,
                    });
                }
                report.already_applied.push(migration.version);
                continue;
            }
            Some(r) if !options.resume_half_applied => {
                return Err(Error::HalfApplied {
                    version: r.version,
                    name: r.name.clone(),
                });
            }
            _ => {}
        }
        record(&client, migration, &checksum, "started").await?;
        for statement in statements {
            client.query(statement).execute().await?;
        }
        record(&client, migration, &checksum, "applied").await?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
        report.applied.push(migration.version);
    }
    Ok(report)
}

/// A database migrated for one server must not be migrated as a cluster's, nor the other way
/// round: its recorded migrations would be taken for applied ones. The record's engine tells
/// which it was.
async fn check_topology(client: &Client, database: &str, cluster: Option<&Cluster>) -> Result<()> {
    let engine = client
        .query("SELECT engine FROM system.tables WHERE database = ? AND name = ?")
        .bind(database)
        .bind(tables::SCHEMA_MIGRATIONS)
        .fetch_optional::<String>()
        .await?;
    match engine {
        Some(engine) if engine.starts_with("Replicated") != cluster.is_some() => {
            Err(Error::TopologyMismatch {
                database: database.to_owned(),
                engine,
                cluster: cluster.map(|c| c.name().to_owned()),
            })
        }
        _ => Ok(()),
    }
}

async fn record(client: &Client, migration: &Migration, checksum: &str, state: &str) -> Result<()> {
    client
        .query(&format!(
            "INSERT INTO {} (version, name, checksum, state) VALUES (?, ?, ?, ?)",
            tables::SCHEMA_MIGRATIONS
        ))
        .bind(migration.version)
        .bind(migration.name)
        .bind(checksum)
        .bind(state)
        .execute()
        .await?;
    Ok(())
}
