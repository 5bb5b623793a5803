//! The load measurement: `--load-connections` clients, one keep-alive connection each, loop
//! for `--load-secs` over a weighted mix of new-api's log endpoints on the query data set
//! while a `logbus-ingest` child writes freshly generated events into the same database at
//! half the ingest rate measured earlier in the run. The request mix and the per-endpoint
//! summary are in `mix`, the results' section in `report`.

mod conn;
mod mix;
mod report;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::background::{BackgroundIngest, Target};
use crate::data::Shape;
use crate::queries::Http;
use mix::{Endpoint, Kind, Schedule, Tally, Vocabulary};
pub(crate) use report::report_section;

/// Events/s published when this run measured no ingest rate to halve.
pub(crate) const FALLBACK_RATE: f64 = 10_000.0;
/// The load's ingest worker's /healthz, /readyz and /metrics (the ingest measurement's is
/// 9477, the bridge's 9478).
const INGEST_HTTP_ADDR: &str = "127.0.0.1:9479";

/// The load measurement's flags.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct LoadArgs {
    /// Skip the load measurement (concurrent clients over the query API while ingest runs).
    #[arg(long)]
    pub skip_load: bool,
    /// Concurrent clients of the load measurement, one keep-alive connection each.
    #[arg(long, default_value_t = 64)]
    pub load_connections: usize,
    /// Seconds the load measurement runs (10 with --quick).
    #[arg(long, default_value_t = 60)]
    pub load_secs: u64,
}

impl LoadArgs {
    pub(crate) fn apply_quick(&mut self) {
        self.load_secs = self.load_secs.min(10);
    }
}

/// What one load run measured.
#[derive(Debug, Default)]
pub(crate) struct LoadRun {
    pub connections: usize,
    /// First request → the last connection's last answer.
    pub secs: f64,
    pub endpoints: Vec<Endpoint>,
    /// Established connections to the API opened by the load clients, least and most of
    /// the samples taken once a second.
    pub open_min: usize,
    pub open_max: usize,
    /// Connections the clients opened (one each unless a transport error made one reconnect).
    pub opened: u32,
    pub target_rate: f64,
    /// Where `target_rate` comes from.
    pub rate_source: String,
    /// Events handed to the producer and rows counted in ClickHouse over `secs`.
    pub published: u64,
    pub ingested: u64,
    /// The window's end → every event published by then counted in ClickHouse.
    pub caught_up_secs: Option<f64>,
    /// How long the catch-up was waited for.
    pub catch_up_limit_secs: u64,
    pub error: Option<String>,
}

impl LoadRun {
    pub(crate) fn requests(&self) -> u64 {
        self.endpoints.iter().map(|e| e.requests).sum()
    }

    pub(crate) fn errors(&self) -> u64 {
        self.endpoints.iter().map(|e| e.errors).sum()
    }
}

/// The ingest rate the load writes at: half of what this run's ingest measurement reached, or
/// [`FALLBACK_RATE`] (and why) when it reached nothing.
pub(crate) fn target_rate(ingest: Option<&crate::Ingest>) -> (f64, String) {
    match ingest {
        Some(i) if i.e2e_rate > 0.0 => (
            i.e2e_rate / 2.0,
            format!(
                "half of the {:.0} events/s the ingest measurement reached in this run",
                i.e2e_rate
            ),
        ),
        Some(_) => (
            FALLBACK_RATE,
            "a fixed fallback: the ingest measurement failed before it had a rate".into(),
        ),
        None => (
            FALLBACK_RATE,
            "a fixed fallback: the ingest measurement was skipped".into(),
        ),
    }
}

/// Runs the load against the query API at `http` over database `db` (the query data set of
/// `shape`, reached through `ch`).
pub(crate) async fn measure(
    cfg: &crate::Config,
    shape: &Shape,
    http: &Http,
    ch: &clickhouse::Client,
    work_dir: &Path,
    db: &str,
    r: &mut LoadRun,
) -> Result<()> {
    let api: std::net::SocketAddr = http
        .base
        .trim_start_matches("http://")
        .parse()
        .context("the API's address")?;
    let api_port = api.port();
    let target = Target::of(cfg, db, "load", INGEST_HTTP_ADDR, cfg.seed + 3);
    let rate = r.target_rate;
    let mut ingest = BackgroundIngest::start(&target, shape, rate, ch, work_dir).await?;
    // Connections that were open before the load (the suite's own client) are not the load's.
    let before = mix::client_ports(&proc_net_tcp(), api_port);

    let vocabulary = Arc::new(Vocabulary {
        users: shape.users,
        tokens: shape.tokens,
        keyword: cfg.keyword.clone(),
        rare_keyword: cfg.rare_keyword.clone(),
    });
    let start = Instant::now();
    let deadline = start + Duration::from_secs(cfg.load.load_secs);
    let clients: Vec<_> = (0..cfg.load.load_connections)
        .map(|c| {
            let conn = conn::Conn::new(api);
            let seed = cfg.seed + 1_000 + c as u64;
            let vocabulary = vocabulary.clone();
            tokio::spawn(connection(
                conn,
                http.admin_id,
                vocabulary,
                c,
                seed,
                deadline,
            ))
        })
        .collect();
    let all = tokio::spawn(futures::future::join_all(clients));
    let (mut open_min, mut open_max) = (usize::MAX, 0);
    // Sampled once a second, after the clients had a second to connect and before the first
    // of them finish at the deadline.
    let mut sample_at = start + Duration::from_secs(1);
    while !all.is_finished() {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if Instant::now() >= sample_at && Instant::now() < deadline {
            let open = mix::client_ports(&proc_net_tcp(), api_port)
                .difference(&before)
                .count();
            (open_min, open_max) = (open_min.min(open), open_max.max(open));
            sample_at += Duration::from_secs(1);
        }
        ingest.check_running()?;
    }
    let mut tallies: Vec<Tally> = (0..Kind::ALL.len()).map(|_| Tally::default()).collect();
    for per_connection in all.await? {
        let (per_connection, opened) = per_connection?;
        r.opened += opened;
        for (total, t) in tallies.iter_mut().zip(per_connection) {
            total.merge(t);
        }
    }
    r.secs = start.elapsed().as_secs_f64();
    r.published = ingest.published();
    r.ingested = ingest.ingested(ch).await?;
    (r.open_min, r.open_max) = (open_min.min(open_max), open_max);
    r.connections = cfg.load.load_connections;
    r.endpoints = mix::summarize(tallies);

    // A minute, plus the backlog at the ingest measurement's rate (the worker catches up much
    // faster than it writes under load).
    r.catch_up_limit_secs = 60 + (r.published.saturating_sub(r.ingested)) / 10_000;
    let finished = ingest
        .finish(ch, Duration::from_secs(r.catch_up_limit_secs))
        .await?;
    r.caught_up_secs = finished.caught_up_secs;
    eprintln!(
        "bench: load {} connections × {:.1} s: {:.0} req/s, {} errors; published {:.0} events/s (target {rate:.0}), {:.0} rows/s counted; {} events in all",
        r.connections,
        r.secs,
        r.requests() as f64 / r.secs,
        r.errors(),
        r.published as f64 / r.secs,
        r.ingested as f64 / r.secs,
        finished.published,
    );
    for e in &r.endpoints {
        eprintln!(
            "bench: load {:<40} {:>6} requests, {} errors, p50 {:>8.1} p99 {:>8.1} ms {}",
            e.label,
            e.requests,
            e.errors,
            e.p50_ms.unwrap_or(0.0),
            e.p99_ms.unwrap_or(0.0),
            e.first_error.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

/// One client: requests of the mix one after the other until `deadline`, on one connection;
/// returns the tallies and how many connections it opened.
async fn connection(
    mut conn: conn::Conn,
    admin_id: u32,
    vocabulary: Arc<Vocabulary>,
    index: usize,
    seed: u64,
    deadline: Instant,
) -> (Vec<Tally>, u32) {
    let mut tallies: Vec<Tally> = (0..Kind::ALL.len()).map(|_| Tally::default()).collect();
    // Each connection starts at its own place in the mix, so they do not all ask the same
    // endpoint at once.
    let mut schedule = Schedule::starting_at(index);
    let mut rng = StdRng::seed_from_u64(seed);
    while Instant::now() < deadline {
        let kind = schedule.next_kind();
        let (path, auth) = vocabulary.request(kind, &mut rng, crate::now_unix() as i64);
        let t = Instant::now();
        let result = conn.get(&path, &auth.headers(admin_id)).await;
        tallies[kind as usize].record(t.elapsed().as_secs_f64() * 1000.0, result);
    }
    (tallies, conn.opened)
}

fn proc_net_tcp() -> String {
    std::fs::read_to_string("/proc/net/tcp").unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_writes_at_half_the_measured_rate_or_says_it_fell_back() {
        let measured = crate::Ingest {
            e2e_rate: 30_000.0,
            ..Default::default()
        };
        assert_eq!(target_rate(Some(&measured)).0, 15_000.0);
        let failed = crate::Ingest {
            error: Some("logbus-ingest exited at startup".into()),
            ..Default::default()
        };
        let (rate, why) = target_rate(Some(&failed));
        assert!(rate == FALLBACK_RATE && why.contains("failed"), "{why}");
        let (rate, why) = target_rate(None);
        assert!(rate == FALLBACK_RATE && why.contains("skipped"), "{why}");
    }
}
