//! The stack itself: the real broker, the real ClickHouse engine through the front, the
//! migrations, the compose file and the analysts' guide's queries.

mod analytics;
mod clickhouse;
mod compose;
mod kafka;
