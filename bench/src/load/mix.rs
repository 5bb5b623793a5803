//! The load's pure parts: the weighted mix of requests each client walks through, the
//! requests themselves (the paths and headers of the query cases), the per-endpoint tally and
//! its percentile summary, and counting the clients' connections in /proc/net/tcp.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::Result;
use rand::Rng;

use crate::data;
use crate::queries::{Auth, percentile};

const PAGE: u32 = 20;

/// The endpoints of the mix, in the order of the results table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    AdminList,
    AdminListDay,
    AdminListUser,
    SelfListBusiest,
    SelfListUser,
    AdminStat,
    SelfStat,
    SearchCommon,
    SearchRare,
    TokenLookup,
}

impl Kind {
    pub(crate) const ALL: [Kind; 10] = [
        Kind::AdminList,
        Kind::AdminListDay,
        Kind::AdminListUser,
        Kind::SelfListBusiest,
        Kind::SelfListUser,
        Kind::AdminStat,
        Kind::SelfStat,
        Kind::SearchCommon,
        Kind::SearchRare,
        Kind::TokenLookup,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::AdminList => "admin list p1 + total, no filter",
            Kind::AdminListDay => "admin list p1 + total, 1-day range",
            Kind::AdminListUser => "admin list p1 + total, by user (random)",
            Kind::SelfListBusiest => "self list p1 + total (busiest user)",
            Kind::SelfListUser => "self list p1 + total (random user)",
            Kind::AdminStat => "admin stat, 1 day",
            Kind::SelfStat => "self stat, 1 day (random user)",
            Kind::SearchCommon => "admin search, common keyword",
            Kind::SearchRare => "admin search, rare keyword",
            Kind::TokenLookup => "token lookup (random token)",
        }
    }

    /// Share of the mix in percent: what a gateway's log pages ask most (a page of the list
    /// with its stat line, users on their own logs, token holders looking up their key), with
    /// the admin-only searches rarest.
    pub(crate) fn weight(self) -> u32 {
        match self {
            Kind::AdminList => 14,
            Kind::AdminListDay => 10,
            Kind::AdminListUser => 10,
            Kind::SelfListBusiest => 10,
            Kind::SelfListUser => 16,
            Kind::AdminStat => 12,
            Kind::SelfStat => 16,
            Kind::SearchCommon => 4,
            Kind::SearchRare => 3,
            Kind::TokenLookup => 5,
        }
    }
}

/// Smooth weighted round robin over [`Kind::ALL`]: every run of 100 requests holds each kind
/// exactly its weight's times, interleaved rather than in blocks, so that a short run has the
/// mix's proportions too.
pub(crate) struct Schedule {
    current: [i64; Kind::ALL.len()],
}

impl Schedule {
    /// The schedule advanced by `offset` picks.
    pub(crate) fn starting_at(offset: usize) -> Self {
        let mut s = Schedule {
            current: [0; Kind::ALL.len()],
        };
        for _ in 0..offset % 100 {
            s.next_kind();
        }
        s
    }

    pub(crate) fn next_kind(&mut self) -> Kind {
        let total: i64 = Kind::ALL.iter().map(|k| k.weight() as i64).sum();
        let mut best = 0;
        for (i, k) in Kind::ALL.iter().enumerate() {
            self.current[i] += k.weight() as i64;
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= total;
        Kind::ALL[best]
    }
}

/// What the requests are about: the query data set's users and tokens, the search keywords.
pub(crate) struct Vocabulary {
    pub users: u32,
    pub tokens: u32,
    pub keyword: String,
    pub rare_keyword: String,
}

impl Vocabulary {
    /// The path and credentials of a `kind` request at unix time `now`.
    pub(crate) fn request(&self, kind: Kind, rng: &mut impl Rng, now: i64) -> (String, Auth) {
        let day = now - 86_400;
        let user = rng.random_range(1..=self.users.max(1));
        match kind {
            Kind::AdminList => (format!("/api/log/?p=1&page_size={PAGE}"), Auth::Admin),
            Kind::AdminListDay => (
                format!("/api/log/?p=1&page_size={PAGE}&start_timestamp={day}&end_timestamp={now}"),
                Auth::Admin,
            ),
            Kind::AdminListUser => (
                format!(
                    "/api/log/?p=1&page_size={PAGE}&username={}",
                    data::username(user)
                ),
                Auth::Admin,
            ),
            Kind::SelfListBusiest => (
                format!("/api/log/self?p=1&page_size={PAGE}"),
                Auth::SelfUser,
            ),
            Kind::SelfListUser => (
                format!("/api/log/self?p=1&page_size={PAGE}"),
                Auth::User(user),
            ),
            Kind::AdminStat => (
                format!("/api/log/stat?type=2&start_timestamp={day}&end_timestamp={now}"),
                Auth::Admin,
            ),
            Kind::SelfStat => (
                format!("/api/log/self/stat?type=2&start_timestamp={day}&end_timestamp={now}"),
                Auth::User(user),
            ),
            Kind::SearchCommon => (
                format!("/api/log/search?keyword={}", self.keyword),
                Auth::Admin,
            ),
            Kind::SearchRare => (
                format!("/api/log/search?keyword={}", self.rare_keyword),
                Auth::Admin,
            ),
            Kind::TokenLookup => {
                let token = rng.random_range(1..=self.tokens.max(1));
                (
                    format!("/api/log/token?key=sk-{}", data::token_key(token)),
                    Auth::None,
                )
            }
        }
    }
}

/// One endpoint's requests as one client (or all, merged) saw them.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    ok_ms: Vec<f64>,
    errors: u64,
    first_error: Option<(Instant, String)>,
}

impl Tally {
    pub(crate) fn record(&mut self, ms: f64, result: Result<()>) {
        match result {
            Ok(()) => self.ok_ms.push(ms),
            Err(e) => {
                self.errors += 1;
                self.first_error
                    .get_or_insert_with(|| (Instant::now(), format!("{e:#}")));
            }
        }
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        self.ok_ms.extend(other.ok_ms);
        self.errors += other.errors;
        self.first_error = match (self.first_error.take(), other.first_error) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
    }
}

/// One endpoint's line of the results.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub label: &'static str,
    pub weight: u32,
    /// Every request, errors included.
    pub requests: u64,
    pub errors: u64,
    /// Of the successful requests; `None` when there was none.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub first_error: Option<String>,
}

/// The endpoints' lines from their tallies (in the order of [`Kind::ALL`]).
pub(crate) fn summarize(tallies: Vec<Tally>) -> Vec<Endpoint> {
    Kind::ALL
        .iter()
        .zip(tallies)
        .map(|(kind, mut t)| {
            t.ok_ms.sort_by(|a, b| a.total_cmp(b));
            let q = |p| (!t.ok_ms.is_empty()).then(|| percentile(&t.ok_ms, p));
            Endpoint {
                label: kind.label(),
                weight: kind.weight(),
                requests: t.ok_ms.len() as u64 + t.errors,
                errors: t.errors,
                p50_ms: q(0.5),
                p99_ms: q(0.99),
                first_error: t.first_error.map(|e| e.1),
            }
        })
        .collect()
}

/// Local ports of the established IPv4 connections to `port` in `/proc/net/tcp`'s text: the
/// client ends of connections to the API (its own ends have `port` as the local port).
pub(crate) fn client_ports(proc_net_tcp: &str, port: u16) -> BTreeSet<u16> {
    const ESTABLISHED: &str = "01";
    let port_of = |addr: &str| {
        addr.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    proc_net_tcp
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, remote, state) = (f.get(1)?, f.get(2)?, f.get(3)?);
            (*state == ESTABLISHED && port_of(remote)? == port)
                .then(|| port_of(local))
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_hundred_requests_hold_each_kind_its_weight_interleaved() {
        assert_eq!(Kind::ALL.iter().map(|k| k.weight()).sum::<u32>(), 100);
        for offset in [0, 1, 37, 163] {
            let mut s = Schedule::starting_at(offset);
            let picks: Vec<Kind> = (0..100).map(|_| s.next_kind()).collect();
            for k in Kind::ALL {
                let n = picks.iter().filter(|p| **p == k).count() as u32;
                assert_eq!(n, k.weight(), "{k:?} at offset {offset}");
            }
            // Interleaved: no kind twice in a row (no weight is above half the total).
            assert!(picks.windows(2).all(|w| w[0] != w[1]), "offset {offset}");
        }
        let first = |o| Schedule::starting_at(o).next_kind();
        assert_ne!(first(0), first(1));
    }

    #[test]
    fn requests_use_the_query_cases_paths_and_credentials() {
        let v = Vocabulary {
            users: 3,
            tokens: 5,
            keyword: "common".into(),
            rare_keyword: "rare".into(),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let (path, auth) = v.request(Kind::AdminListDay, &mut rng, 100_000);
        assert_eq!(
            path,
            "/api/log/?p=1&page_size=20&start_timestamp=13600&end_timestamp=100000"
        );
        assert!(auth == Auth::Admin);
        let (path, auth) = v.request(Kind::SelfStat, &mut rng, 100_000);
        assert!(path.starts_with("/api/log/self/stat?type=2&start_timestamp=13600"));
        assert!(matches!(auth, Auth::User(1..=3)), "a user of the data set");
        let (path, auth) = v.request(Kind::SearchRare, &mut rng, 0);
        assert_eq!(
            (path.as_str(), auth),
            ("/api/log/search?keyword=rare", Auth::Admin)
        );
        for _ in 0..50 {
            let (path, auth) = v.request(Kind::TokenLookup, &mut rng, 0);
            let id: u32 = path
                .strip_prefix("/api/log/token?key=sk-bench")
                .and_then(|k| k.parse().ok())
                .expect("a bench token key");
            assert!((1..=5).contains(&id) && auth == Auth::None, "{path}");
        }
    }

    #[test]
    fn the_summary_gives_nearest_rank_percentiles_of_the_successes_and_the_first_error() {
        let mut a = Tally::default();
        let mut b = Tally::default();
        for ms in (1..=100).rev() {
            a.record(ms as f64, Ok(()));
        }
        b.record(5_000.0, Err(anyhow::anyhow!("HTTP 503: busy")));
        a.record(1.0, Err(anyhow::anyhow!("HTTP 504: late")));
        b.record(1.0, Err(anyhow::anyhow!("HTTP 500: later")));
        a.merge(b);
        let mut tallies: Vec<Tally> = (0..Kind::ALL.len()).map(|_| Tally::default()).collect();
        tallies[Kind::SelfStat as usize] = a;
        let lines = summarize(tallies);
        let line = &lines[Kind::SelfStat as usize];
        assert_eq!(line.label, Kind::SelfStat.label());
        assert_eq!((line.requests, line.errors), (103, 3));
        assert_eq!((line.p50_ms, line.p99_ms), (Some(50.0), Some(99.0)));
        assert_eq!(line.first_error.as_deref(), Some("HTTP 503: busy"));
        let idle = &lines[Kind::AdminList as usize];
        assert_eq!(
            (idle.requests, idle.p50_ms, idle.first_error.as_ref()),
            (0, None, None)
        );
    }

    #[test]
    fn client_ports_are_the_established_connections_to_the_port() {
        // 0x0F43 = 3907 (the API), 0xD431 / 0xD432 two clients, 0x2384 = 9092.
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
           0: 0100007F:0F43 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n\
           1: 0100007F:D431 0100007F:0F43 01 00000000:00000000 00:00000000 00000000     0        0 2\n\
           2: 0100007F:0F43 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 3\n\
           3: 0100007F:D432 0100007F:0F43 06 00000000:00000000 00:00000000 00000000     0        0 4\n\
           4: 0100007F:D433 0100007F:2384 01 00000000:00000000 00:00000000 00000000     0        0 5\n";
        assert_eq!(client_ports(text, 3907), BTreeSet::from([0xD431]));
        assert!(client_ports(text, 1).is_empty());
    }
}
