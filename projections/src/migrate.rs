//! Versioned, idempotent schema migrations recorded in `schema_migrations`.
//!
//! Each migration writes a `started` row before its first statement and an `applied` row after
//! its last. A `started` row without an `applied` one means a previous run died half-way: that
//! is reported instead of silently re-run, unless the caller asks to resume (every statement is
//! idempotent, so resuming is safe once the cause is understood).

use clickhouse::{Client, Row};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{Error, Result, tables, validate_database_name};

#[derive(Debug)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "ingest_batches",
        sql: include_str!("migrations/0002_ingest_batches.sql"),
    },
    Migration {
        version: 3,
        name: "codecs",
        sql: include_str!("migrations/0003_codecs.sql"),
    },
    Migration {
        version: 4,
        name: "stat_projections",
        sql: include_str!("migrations/0004_stat_projections.sql"),
    },
    Migration {
        version: 5,
        name: "insert_cost",
        sql: include_str!("migrations/0005_insert_cost.sql"),
    },
    Migration {
        version: 6,
        name: "read_blocks",
        sql: include_str!("migrations/0006_read_blocks.sql"),
    },
    Migration {
        version: 7,
        name: "column_comments",
        sql: include_str!("migrations/0007_column_comments.sql"),
    },
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

#[derive(Debug, Default, Clone, Copy)]
pub struct MigrateOptions {
    pub resume_half_applied: bool,
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
    client
        .query(&format!("CREATE DATABASE IF NOT EXISTS `{database}`"))
        .execute()
        .await?;
    let client = client.clone().with_database(database);
    client
        .query(&format!(
            "CREATE TABLE IF NOT EXISTS {} (
                version UInt32 COMMENT 'Migration number',
                name String COMMENT 'Migration name',
                checksum String COMMENT 'SHA-256 of the migration SQL',
                state LowCardinality(String) COMMENT 'started, then applied once every statement ran',
                at DateTime64(3, 'UTC') DEFAULT now64(3) COMMENT 'When the state was recorded'
            ) ENGINE = MergeTree ORDER BY (version, at)
            COMMENT 'Schema versions applied by logbus migrations'",
            tables::SCHEMA_MIGRATIONS
        ))
        .execute()
        .await?;

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
    for migration in MIGRATIONS {
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
        for statement in migration.statements() {
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
