//! The query API over a store filled through the real ingest path: lists, search, stats,
//! token lookup and the retention delete (its guards, lock and partial failure in `retention`).

mod logs;
mod retention;
mod search;
mod session;
mod stat;
