//! The query API over a store filled through the real ingest path: lists, search, stats,
//! token lookup, the retention delete (its guards, lock and partial failure in `retention`),
//! new-api's dashboard data, the time series, the live tail and the web console (in headless
//! Chromium), schemathesis over the OpenAPI document and the service's own metrics.

mod auth;
mod console;
mod cursor;
mod data;
mod export;
mod export_scale;
mod limits;
mod logs;
mod metrics;
mod openapi_fuzz;
mod readonly;
mod retention;
mod search;
mod series;
mod session;
mod stat;
mod tail;
