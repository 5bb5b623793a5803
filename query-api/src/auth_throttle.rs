//! Failed authentications per client address: a client that keeps presenting unknown
//! credentials (guessing, or a web page making its visitors call the CORS-enabled token
//! endpoint) is answered 429 with `Retry-After`, before any lookup, once it is over
//! `--auth-failures-per-minute`.
//!
//! Only failures count (an unknown access token or key, a `New-Api-User` that is not the
//! token's user, a session new-api refuses): dashboards that authenticate correctly are never
//! slowed, however often they call. The budget is a burst of N failures, refilled at N per
//! minute (GCRA, by `governor`). Behind a reverse proxy every client has the proxy's address;
//! `--client-address-header` names the header the proxy sets (the last address in it counts,
//! the one the proxy itself appended). IPv6 clients are counted per /64, the block one host
//! usually gets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use metrics::counter;
use moka::future::Cache;

use crate::error::ApiError;
use crate::metrics::names;

pub const DEFAULT_AUTH_FAILURES_PER_MINUTE: u32 = 300;
/// Most client addresses remembered: beyond it, addresses idle long enough are forgotten.
const MAX_TRACKED: usize = 100_000;

/// The throttle's flags.
#[derive(Clone, Debug, clap::Args)]
pub struct ThrottleConfig {
    /// Failed authentications one client address may make in a burst, refilled at this many
    /// per minute; beyond it, its credential checks are answered 429 (0: no limit).
    #[arg(long, env = "LOGBUS_API_AUTH_FAILURES_PER_MINUTE", default_value_t = DEFAULT_AUTH_FAILURES_PER_MINUTE)]
    pub auth_failures_per_minute: u32,
    /// Header in which a trusted reverse proxy passes the client's address (X-Forwarded-For,
    /// X-Real-IP); its last address counts. Unset: the connection's peer address. Set it only
    /// behind a proxy that always sets it, or clients choose the address they are counted by.
    #[arg(long, env = "LOGBUS_API_CLIENT_ADDRESS_HEADER")]
    pub client_address_header: Option<HeaderName>,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            auth_failures_per_minute: DEFAULT_AUTH_FAILURES_PER_MINUTE,
            client_address_header: None,
        }
    }
}

/// Who failures are counted against: a client address, IPv6 ones reduced to their /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => Self(address),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }

    /// The client of a request: the last address in `header` when one is configured and
    /// readable, else the peer; a request with neither (served in-process) counts as one
    /// unknown client.
    pub fn from_request(
        header: Option<&HeaderName>,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> Self {
        let forwarded = header
            .and_then(|name| headers.get_all(name).iter().next_back())
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.rsplit(',').next())
            .and_then(|last| parse_address(last.trim()));
        let address = forwarded
            .or(peer.map(|peer| peer.ip()))
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Self::of(address)
    }
}

/// An address as proxies write it: bare, `[v6]`, or with a port.
fn parse_address(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            let inner = text.strip_prefix('[')?.strip_suffix(']')?;
            inner.parse().ok()
        })
}

/// The failure budgets of every client address.
pub struct AuthThrottle {
    limiter: Option<DefaultKeyedRateLimiter<ClientKey>>,
    /// Clients over their budget and until when: refused before any lookup.
    refused_until: Cache<ClientKey, Instant>,
    address_header: Option<HeaderName>,
}

impl std::fmt::Debug for AuthThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthThrottle")
            .field("enabled", &self.limiter.is_some())
            .field("address_header", &self.address_header)
            .finish()
    }
}

impl AuthThrottle {
    pub fn new(config: &ThrottleConfig) -> Self {
        let limiter = NonZeroU32::new(config.auth_failures_per_minute)
            .map(|per_minute| RateLimiter::keyed(Quota::per_minute(per_minute)));
        Self {
            limiter,
            refused_until: Cache::builder()
                .max_capacity(MAX_TRACKED as u64)
                .time_to_live(Duration::from_secs(60))
                .build(),
            address_header: config.client_address_header.clone(),
        }
    }

    /// The client of a request with these headers from `peer` ([`ClientKey::from_request`]).
    pub fn client(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> ClientKey {
        ClientKey::from_request(self.address_header.as_ref(), headers, peer)
    }

    /// Refuses `client` while it is over its budget.
    pub async fn check(&self, client: ClientKey) -> Result<(), ApiError> {
        match self.refused_until.get(&client).await {
            Some(until) => match until.checked_duration_since(Instant::now()) {
                Some(retry_after) if !retry_after.is_zero() => {
                    counter!(names::AUTH_THROTTLED).increment(1);
                    Err(ApiError::AuthThrottled { retry_after })
                }
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Counts a failed authentication of `client`: `failure` itself while within the budget,
    /// a 429 once this failure is over it (and `client` is refused until it refills).
    pub async fn failed(&self, client: ClientKey, failure: ApiError) -> ApiError {
        let Some(limiter) = &self.limiter else {
            return failure;
        };
        if limiter.len() > MAX_TRACKED {
            limiter.retain_recent();
        }
        match limiter.check_key(&client) {
            Ok(()) => failure,
            Err(not_until) => {
                let retry_after = not_until.wait_time_from(limiter.clock().now());
                self.refused_until
                    .insert(client, Instant::now() + retry_after)
                    .await;
                tracing::warn!(client = ?client.0, ?retry_after,
                    "too many failed authentications from one client address");
                counter!(names::AUTH_THROTTLED).increment(1);
                ApiError::AuthThrottled { retry_after }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn key(text: &str) -> ClientKey {
        ClientKey::of(text.parse().expect("an address"))
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }

    #[test]
    fn the_proxy_header_counts_only_when_configured_and_its_last_address_wins() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().expect("peer");
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 198.51.100.4:8080"),
        );
        let name = HeaderName::from_static("x-forwarded-for");
        assert_eq!(
            ClientKey::from_request(None, &headers, Some(peer)),
            key("10.0.0.1")
        );
        assert_eq!(
            ClientKey::from_request(Some(&name), &headers, Some(peer)),
            key("198.51.100.4")
        );
        headers.insert("x-forwarded-for", HeaderValue::from_static("[2001:db8::1]"));
        assert_eq!(
            ClientKey::from_request(Some(&name), &headers, Some(peer)),
            key("2001:db8::1")
        );
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("not an address"),
        );
        assert_eq!(
            ClientKey::from_request(Some(&name), &headers, Some(peer)),
            key("10.0.0.1"),
            "an unreadable header falls back to the peer"
        );
        assert_eq!(
            ClientKey::from_request(None, &HeaderMap::new(), None),
            key("0.0.0.0")
        );
    }

    #[tokio::test]
    async fn a_client_over_its_budget_is_refused_and_others_are_not() {
        let throttle = AuthThrottle::new(&ThrottleConfig {
            auth_failures_per_minute: 3,
            client_address_header: None,
        });
        let (guesser, neighbour) = (key("192.0.2.1"), key("192.0.2.2"));
        for _ in 0..3 {
            assert!(throttle.check(guesser).await.is_ok());
            let answer = throttle.failed(guesser, ApiError::InvalidAccessToken).await;
            assert!(matches!(answer, ApiError::InvalidAccessToken), "{answer:?}");
        }
        let answer = throttle.failed(guesser, ApiError::InvalidAccessToken).await;
        let ApiError::AuthThrottled { retry_after } = answer else {
            panic!("the fourth failure is over the budget: {answer:?}");
        };
        // 3 per minute: the next failure is allowed 20 s after the burst.
        assert!(retry_after > Duration::from_secs(15) && retry_after <= Duration::from_secs(20));
        assert!(matches!(
            throttle.check(guesser).await,
            Err(ApiError::AuthThrottled { .. })
        ));
        assert!(throttle.check(neighbour).await.is_ok());
        let answer = throttle.failed(neighbour, ApiError::UserMismatch).await;
        assert!(matches!(answer, ApiError::UserMismatch), "{answer:?}");
    }

    #[tokio::test]
    async fn zero_turns_the_limit_off() {
        let throttle = AuthThrottle::new(&ThrottleConfig {
            auth_failures_per_minute: 0,
            client_address_header: None,
        });
        for _ in 0..1000 {
            let answer = throttle
                .failed(key("192.0.2.1"), ApiError::InvalidAccessToken)
                .await;
            assert!(matches!(answer, ApiError::InvalidAccessToken));
        }
        assert!(throttle.check(key("192.0.2.1")).await.is_ok());
    }
}
