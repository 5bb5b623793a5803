//! logbus query API: new-api's log module (`/api/log/...`) served from ClickHouse.
//!
//! [`Server::bind`] binds the configured address and [`Server::serve`] serves the router of
//! [`routes`] until shutdown; tests bind port 0 and read [`Server::local_addr`] in between.
//! The endpoints, their differences from new-api and the code layout (which module holds
//! which behaviour) are described in docs/api.md. Imports go one way, each module using only
//! modules to its right: `server`, `routes`, `console`, `openapi`, `handlers`, `auth`,
//! `state`, `tail`, `auth_throttle`, `identity`, `store`, `sql`, `params`, `error`, `views`,
//! `metrics` (and `config`, which uses only `limits`, `auth_throttle` and `tail`'s flags).

pub mod auth;
pub mod auth_throttle;
pub mod config;
pub mod console;
pub mod error;
pub mod handlers;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod routes;
pub mod server;
pub mod session;
pub mod sql;
pub mod state;
pub mod store;
pub mod tail;
pub mod views;

pub use config::Config;
pub use error::{ApiError, Lang};
pub use openapi::ApiDoc;
pub use routes::{ROUTES, app};
pub use server::Server;
pub use state::AppState;
