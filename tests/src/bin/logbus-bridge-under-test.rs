//! The bridge's command line, built inside the tests crate so that integration tests can
//! start it as a real process (and SIGKILL or SIGTERM it) through
//! `env!("CARGO_BIN_EXE_logbus-bridge-under-test")`. Its source is the `logbus-bridge`
//! binary's own.

include!("../../../bridge/src/bin/logbus-bridge.rs");
