//! The query API's command line, built inside the tests crate so that integration tests can
//! start it as a real process (and read its memory in `/proc`) through
//! `env!("CARGO_BIN_EXE_logbus-query-api-under-test")`. Its source is the `logbus-query-api`
//! binary's own.

include!("../../../query-api/src/bin/logbus-query-api.rs");
