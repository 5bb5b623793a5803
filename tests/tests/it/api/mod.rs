//! The query API over a store filled through the real ingest path: lists, search, stats,
//! token lookup and the retention delete.

mod limits;
mod logs;
mod search;
mod session;
mod stat;
