//! The query API over a store filled through the real ingest path: lists, search, stats,
//! token lookup and the retention delete.

mod cursor;
mod export;
mod export_scale;
mod logs;
mod search;
mod stat;
