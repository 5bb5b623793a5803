//! The ingest worker against the real broker and ClickHouse: exactly-once under crashes,
//! outages, restarts and rebalances, and malformed input.

mod broker_failover;
mod clickhouse_outage;
mod crash;
mod exactly_once;
mod lag;
mod malformed;
mod rebalance;
mod retention_ttl;
mod scale_out;
mod service_restarts;
mod time_window;
