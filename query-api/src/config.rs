//! Command-line and environment configuration.
//!
//! Each default has one home, a constant below, read both by the clap attributes and by
//! [`Config::new`], so that a config built in code (tests, the bench) equals one parsed from
//! no flags.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use logbus_runtime::ClickHouseArgs;

use crate::auth_throttle::ThrottleConfig;
use crate::limits::Limits;
use crate::tail::TailConfig;

/// Default of `--listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// Default of `--identity-cache-ttl-ms`.
pub const DEFAULT_IDENTITY_CACHE_TTL_MS: u64 = 2000;
/// Upper bound of `--identity-cache-ttl-ms`.
pub const MAX_IDENTITY_CACHE_TTL_MS: u64 = 60_000;
/// Default of `--newapi-timeout-ms`.
pub const DEFAULT_NEWAPI_TIMEOUT_MS: u64 = 3000;
/// Default of `--retention-min-age-secs`: one day.
pub const DEFAULT_RETENTION_MIN_AGE_SECS: u64 = 86_400;
/// Default of `--query-timeout-secs`.
pub const DEFAULT_QUERY_TIMEOUT_SECS: u64 = 30;
/// Default of `--export-timeout-secs`: an hour, far beyond what a 10M-row export takes.
pub const DEFAULT_EXPORT_TIMEOUT_SECS: u64 = 3_600;

/// logbus query API: new-api's log module over ClickHouse.
///
/// Every flag can also be set through the environment variable named in its help.
#[derive(Clone, Debug, Parser)]
#[command(name = "logbus-query-api", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LOGBUS_API_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub clickhouse: ClickHouseArgs,

    /// How long users and tokens looked up for authentication are cached, in milliseconds:
    /// a disabled user or token is locked out within this time. 0 disables the cache; at most
    /// 60000 (a ban must take effect within a minute).
    #[arg(
        long,
        env = "LOGBUS_IDENTITY_CACHE_TTL_MS",
        default_value_t = DEFAULT_IDENTITY_CACHE_TTL_MS,
        value_parser = clap::value_parser!(u64).range(0..=MAX_IDENTITY_CACHE_TTL_MS)
    )]
    pub identity_cache_ttl_ms: u64,

    /// Longest a ClickHouse query may run before the request fails with 504.
    #[arg(long, env = "LOGBUS_QUERY_TIMEOUT_SECS", default_value_t = DEFAULT_QUERY_TIMEOUT_SECS)]
    pub query_timeout_secs: u64,

    #[command(flatten)]
    pub limits: Limits,

    #[command(flatten)]
    pub throttle: ThrottleConfig,

    #[command(flatten)]
    pub tail: TailConfig,

    /// new-api's base URL as this process reaches it (`http://new-api:3000`). When set, a
    /// request with new-api's `session` cookie and no `Authorization` is checked with new-api's
    /// `GET /api/user/self` (docs/adopting.md); unset, such a request is refused (401).
    #[arg(long, env = "LOGBUS_NEWAPI_URL")]
    pub newapi_url: Option<String>,

    /// Longest wait for new-api's answer about a session, in milliseconds (then 503).
    #[arg(long, env = "LOGBUS_NEWAPI_TIMEOUT_MS", default_value_t = DEFAULT_NEWAPI_TIMEOUT_MS)]
    pub newapi_timeout_ms: u64,
    /// Longest an export (`/api/log/export`, `/api/log/self/export`) may stream, in seconds;
    /// its first row must still arrive within the query timeout.
    #[arg(long, env = "LOGBUS_EXPORT_TIMEOUT_SECS", default_value_t = DEFAULT_EXPORT_TIMEOUT_SECS)]
    pub export_timeout_secs: u64,

    /// The retention delete (`DELETE /api/log/`) refuses a `target_timestamp` newer than now
    /// minus this many seconds unless the request adds `confirm=true`: a typo must not delete
    /// today's logs. 0 refuses only targets in the future (which are always refused).
    #[arg(long, env = "LOGBUS_RETENTION_MIN_AGE_SECS", default_value_t = DEFAULT_RETENTION_MIN_AGE_SECS)]
    pub retention_min_age_secs: u64,
}

impl Config {
    /// A config listening on `listen` over `clickhouse`, every other setting at its default.
    pub fn new(listen: SocketAddr, clickhouse: ClickHouseArgs) -> Self {
        Self {
            listen,
            clickhouse,
            identity_cache_ttl_ms: DEFAULT_IDENTITY_CACHE_TTL_MS,
            query_timeout_secs: DEFAULT_QUERY_TIMEOUT_SECS,
            limits: Limits::default(),
            throttle: ThrottleConfig::default(),
            tail: TailConfig::default(),
            newapi_url: None,
            newapi_timeout_ms: DEFAULT_NEWAPI_TIMEOUT_MS,
            export_timeout_secs: DEFAULT_EXPORT_TIMEOUT_SECS,
            retention_min_age_secs: DEFAULT_RETENTION_MIN_AGE_SECS,
        }
    }

    pub fn identity_cache_ttl(&self) -> Duration {
        Duration::from_millis(self.identity_cache_ttl_ms)
    }

    pub fn newapi_timeout(&self) -> Duration {
        Duration::from_millis(self.newapi_timeout_ms.max(1))
    }

    pub fn query_timeout(&self) -> Duration {
        Duration::from_secs(self.query_timeout_secs.max(1))
    }

    /// Never shorter than the query timeout.
    pub fn export_timeout(&self) -> Duration {
        Duration::from_secs(self.export_timeout_secs).max(self.query_timeout())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_hidden_password() {
        let config =
            Config::try_parse_from(["logbus-query-api", "--clickhouse-password", "hunter2"])
                .expect("parses");
        assert_eq!(config.listen.port(), 3000);
        assert_eq!(config.clickhouse.database, "logbus");
        assert_eq!(config.identity_cache_ttl_ms, 2000);
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn the_identity_cache_ttl_is_bounded() {
        let parse = |ttl: &str| {
            Config::try_parse_from(["logbus-query-api", "--identity-cache-ttl-ms", ttl])
        };
        assert!(parse("60000").is_ok());
        assert!(parse("0").is_ok());
        assert!(parse("60001").is_err());
    }

    #[test]
    fn the_base_constructor_equals_parsing_no_flags() {
        let parsed = Config::try_parse_from(["logbus-query-api"]).expect("parses");
        let built = Config::new(
            DEFAULT_LISTEN.parse().expect("valid address"),
            ClickHouseArgs::new(&parsed.clickhouse.url, &parsed.clickhouse.database),
        );
        assert_eq!(format!("{built:?}"), format!("{parsed:?}"));
    }
}
