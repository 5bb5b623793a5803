//! The contract and the schema of logbus, shared by every crate that reads or writes them:
//!
//! - the event contract: [`events`] (`gateway.logs`), [`identity`] (`gateway.identity`) and
//!   [`reject`], the typed reason an event is refused with, and [`redact`], the credentials
//!   a dead letter must not carry, and [`window`], the `created_at` values accepted;
//! - the ClickHouse schema: [`migrate`] (versioned SQL migrations, and [`cluster`], their
//!   variant for a cluster of shards and replicas), [`rows`] (the row types,
//!   whose column lists SQL reads through `?fields`) and [`schema`] (table names, the minute
//!   rollup's SELECT, partitioning), [`ttl`], the automatic retention, and [`grants`], the
//!   roles of least privilege.
//!
//! It performs no I/O except [`migrate`] and [`ttl::apply`], so that a column or a reason can only be renamed in
//! one place.

pub mod cluster;
mod error;
pub mod events;
pub mod grants;
pub mod identity;
pub mod migrate;
pub mod redact;
pub mod reject;
pub mod rows;
pub mod schema;
pub mod ttl;
pub mod window;

pub use cluster::Cluster;
pub use error::{Error, Result};
pub use migrate::{MIGRATIONS, MigrateOptions, Migration, MigrationReport, migrate};
pub use schema::{partition_id, tables, validate_database_name};
