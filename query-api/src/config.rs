//! Command-line and environment configuration.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

/// logbus query API: new-api's log module over ClickHouse.
///
/// Every flag can also be set through the environment variable named in its help.
#[derive(Clone, Parser)]
#[command(name = "logbus-query-api", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LOGBUS_API_LISTEN", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    #[command(flatten)]
    pub clickhouse: logbus_runtime::ClickHouseArgs,

    /// How long users and tokens looked up for authentication are cached, in milliseconds:
    /// a disabled user or token is locked out within this time. 0 disables the cache.
    #[arg(long, env = "LOGBUS_IDENTITY_CACHE_TTL_MS", default_value_t = 2000)]
    pub identity_cache_ttl_ms: u64,

    /// Longest a ClickHouse query may run before the request fails with 504.
    #[arg(long, env = "LOGBUS_QUERY_TIMEOUT_SECS", default_value_t = 30)]
    pub query_timeout_secs: u64,
}

impl Config {
    pub fn identity_cache_ttl(&self) -> Duration {
        Duration::from_millis(self.identity_cache_ttl_ms)
    }

    pub fn query_timeout(&self) -> Duration {
        Duration::from_secs(self.query_timeout_secs.max(1))
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("clickhouse", &self.clickhouse)
            .field("identity_cache_ttl_ms", &self.identity_cache_ttl_ms)
            .field("query_timeout_secs", &self.query_timeout_secs)
            .finish()
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
}
