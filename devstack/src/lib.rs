//! The local dev stack (`devstack/*.sh`, `devstack/chfront`) seen from Rust, for the
//! integration tests and the benchmark: where the stack is installed ([`paths`]), child
//! processes that a test or the bench owns and never leaks ([`Process`]), and a private
//! ClickHouse front on a port and data folder of its own ([`ChFront`]), and private Apache
//! Kafka brokers: one node ([`Kafka`]) or a 3-node KRaft cluster ([`KafkaCluster`]), and
//! private SQL servers, new-api's databases: [`Postgres`] and [`MariaDb`].
//!
//! Services are stopped by the pid of the process this crate started, never by name.

mod chfront;
mod kafka;
pub mod paths;
mod process;
mod sqldb;

pub use chfront::ChFront;
pub use kafka::{Kafka, KafkaCluster, kafka_libs};
pub use process::Process;
pub use sqldb::{MariaDb, Postgres};

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{} is missing: install the dev stack with `make install`", .0.display())]
    NotInstalled(PathBuf),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{name} exited ({status}); log {}:\n{tail}", log.display())]
    Exited {
        name: String,
        status: std::process::ExitStatus,
        log: PathBuf,
        tail: String,
    },
    #[error("{what}: not ready after {timeout:?}")]
    NotReady { what: String, timeout: Duration },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}
