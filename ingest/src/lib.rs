//! logbus ingest: consumes gateway usage-log events from Kafka and writes them to ClickHouse
//! with an exactly-once effect (see `docs/ingest.md` for the design and the argument).
//!
//! The entry point is [`Worker`]: `Worker::bind(config).await?.run(shutdown).await`. The
//! `logbus-ingest` binary is only that, with flags parsed into an [`IngestConfig`] (and
//! `logbus-ingest migrations --print`, which prints [`migrations_script`]).
//!
//! # Layout
//!
//! Each concern has one module, and imports go one way (a module uses only those listed
//! after it):
//!
//! - [`worker`](Worker): life cycle — bind, migrate, connect, run, stop the HTTP task;
//! - `consume`: the loop that sequences polling, batching, flushing and committing;
//! - `monitor`: the lag monitor (a periodic task measuring committed offsets and watermarks
//!   off the async runtime; also the Kafka reachability probe behind /readyz);
//! - `consumer`: rdkafka consumer settings, rebalance events (a channel from the context)
//!   and the committer (in-order commits on a blocking thread);
//! - `writer`: a batch's write task (intent, event-id filter, deduplicated insert, split on
//!   rejection, dead-letter acknowledgements);
//! - `lag`: the pure consumer lag (its definition, revoked partitions, the total);
//! - `plan`: pure replay planning (recorded intents, where a replay cuts its batches);
//! - `batch`: the pure batch (what a message adds, size and age limits, batch id, the dead
//!   letters of refused rows);
//! - `dead_letter`: the one constructor of dead letters and their producer;
//! - `retry`: backoff, transient-versus-data classification, shutdown give-up;
//! - `store`: the ClickHouse calls;
//! - `http` (/healthz, /readyz and the causes it combines, /metrics) and `metrics` (names, descriptions, recorder);
//! - `cli`: the binary's command line (no subcommand: run; `migrations --print`: the SQL);
//! - `grants`: `logbus-ingest grants`, the roles of least privilege printed or applied;
//! - `config`, `error` and `source` (the named types everything speaks: `TopicPartition`,
//!   `SourceMessage`, `Kind`).
//!
//! The pure modules (`plan`, `batch`, `lag`, the letter constructor, `http`'s readiness
//! verdict) hold every batching, replay, lag and readiness rule, so those are unit-tested
//! without a broker; the integration tests in `tests/` cover what only a broker and
//! ClickHouse can show.

mod batch;
mod cli;
mod config;
mod consume;
mod consumer;
mod dead_letter;
mod error;
pub mod grants;
mod http;
mod lag;
pub mod metrics;
mod monitor;
mod plan;
mod retry;
mod source;
mod store;
mod worker;
mod writer;

pub use cli::{Cli, Command, migrations_script};
pub use config::*;
pub use error::Error;
pub use logbus_runtime::{ClickHouseArgs, KafkaArgs};
pub use worker::Worker;
