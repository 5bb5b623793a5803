//! The ingest worker's command line, built inside the tests crate so that integration tests
//! can start it as a real process (and SIGKILL or SIGTERM it) through
//! `env!("CARGO_BIN_EXE_logbus-ingest-under-test")`. Its source is the `logbus-ingest`
//! binary's own.

include!("../../../ingest/src/bin/logbus-ingest.rs");
