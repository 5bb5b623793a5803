//! logbus's integration tests: one test binary against the real broker and the real ClickHouse
//! engine that `make test` starts. Each test makes its own database and topics, named after
//! the test (see [`support`]).

mod api;
mod bridge;
mod foundation;
mod ingest;
mod support;
