//! The stack itself: the real broker, the real ClickHouse engine through the front, the
//! migrations and the compose file.

mod clickhouse;
mod compose;
mod kafka;
