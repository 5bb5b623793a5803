//! Realistic gateway events, deterministic from a seed: the `logbus-gen` demo load generator
//! (identity events, then usage logs at a rate, to Kafka), the integration tests' events and
//! the benchmark's data set all come from one [`Generator`] over one vocabulary
//! ([`catalog`]), so that the demo, the tests and the benchmark describe the same gateway.
//!
//! - [`catalog`]: groups, models, token names, error messages, naming rules, [`Shape`];
//! - [`generator`]: the rows and events (a time-ordered data set, or one event at a time);
//! - [`event`]: a row as the JSON event a gateway publishes;
//! - [`identity`]: users and tokens with seeded credentials;
//! - [`publish`](mod@publish): the Kafka publisher behind the binary.

pub mod catalog;
pub mod event;
pub mod generator;
pub mod identity;
pub mod publish;

pub use catalog::Shape;
pub use event::{event_json, event_of};
pub use generator::Generator;
pub use identity::{admin_access_token, identity_events, identity_key};
pub use publish::{Error, GenConfig, GenReport, publish};
