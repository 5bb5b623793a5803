//! The live tail's measurement (docs/api.md, "Live tail"): `--tail-clients` Server-Sent-Events
//! clients on a query API over the ingest measurement's database while the benchmark publishes
//! at half the measured ingest rate, in a window after the freshness step's. A few clients are
//! admins tailing every row (`--tail-admin-clients`), the rest are users tailing their own
//! rows, as a site's viewers would be; each delivery's latency runs from the event's
//! publication (the milliseconds in its `tail-<ms>` request id) to its arrival at the client.
//! The API's `/metrics` give the ClickHouse queries it spent on tailing.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use eventsource_stream::Eventsource;
use futures::StreamExt;
use logbus_devstack::Process;

use crate::data::{self, Shape};
use crate::logbus;
use crate::queries::Auth;

/// The request-id prefix of the events published during the tail's window.
pub(crate) const STAMP: &str = "tail-";
/// The tail measurement's query API (the query suite's is `--api-port`).
const TAIL_API_PORT: u16 = 3908;
/// Latencies are counted in 1 ms buckets up to this; slower deliveries land in the last one.
const MAX_LATENCY_MS: usize = 60_000;
/// The query kinds the API records for tailing (query-api/src/store/tail.rs).
const TAIL_QUERY_KINDS: [&str; 3] = ["tail_read", "tail_catch_up", "tail_start"];

/// The tail measurement's flags.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct TailArgs {
    /// Skip the live tail's measurement.
    #[arg(long)]
    pub skip_tail: bool,
    /// Server-Sent-Events clients connected during the freshness step.
    #[arg(long, default_value_t = 100)]
    pub tail_clients: usize,
    /// Of those, admins tailing every row (the others tail one user's rows each).
    #[arg(long, default_value_t = 4)]
    pub tail_admin_clients: usize,
}

/// What one tail run measured.
#[derive(Debug, Default)]
pub(crate) struct TailRun {
    pub clients: usize,
    pub admin_clients: usize,
    pub rate: f64,
    pub secs: f64,
    pub delivered: u64,
    pub expected: u64,
    /// Clients that received exactly the rows they were due.
    pub exact_clients: usize,
    pub lagged: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The ingest freshness of the same rows (publication → queryable), which the tail's
    /// latency includes.
    pub fresh_p50_ms: f64,
    pub fresh_p99_ms: f64,
    /// ClickHouse queries of the tail kinds per second of the window.
    pub queries_per_sec: f64,
    /// CPU over the window, in % of one core: the query API, and the benchmark's process
    /// (the clients, and the window's producer).
    pub api_cpu_pct: f64,
    pub clients_cpu_pct: f64,
    pub error: Option<String>,
}

/// One client's tally.
#[derive(Debug)]
struct Tally {
    user_id: Option<u32>,
    delivered: u64,
    lagged: u64,
    latency_ms: Vec<u32>,
}

/// The API and its clients while the tail's window publishes.
pub(crate) struct Tailing {
    api: Process,
    http: reqwest::Client,
    base: String,
    tallies: Vec<Arc<Mutex<Tally>>>,
    clients: Vec<tokio::task::JoinHandle<()>>,
    admin_clients: usize,
    queries_before: f64,
    /// CPU seconds of the API and of this process at the start.
    cpu_before: (f64, f64),
    started: Instant,
}

/// Starts a query API over `db` (whose identity this loads) and connects the clients; returns
/// once every stream is open, before anything is published.
pub(crate) async fn start(
    args: &TailArgs,
    shape: &Shape,
    clickhouse_url: &str,
    db: &str,
    work_dir: &Path,
) -> Result<Tailing> {
    let ch = logbus::ch(clickhouse_url).with_database(db);
    let (users, tokens) = data::identity(shape);
    logbus::insert_identity(&ch, &users, &tokens).await?;
    let admin_clients = args.tail_admin_clients.min(args.tail_clients);
    let api = logbus::start_query_api(
        TAIL_API_PORT,
        clickhouse_url,
        db,
        &[
            (
                "LOGBUS_TAIL_MAX_STREAMS_PER_USER",
                admin_clients.max(1).to_string(),
            ),
            ("LOGBUS_TAIL_MAX_STREAMS", args.tail_clients.to_string()),
        ],
        &work_dir.join("query-api-tail.log"),
    )
    .await?;
    let base = format!("http://127.0.0.1:{TAIL_API_PORT}");
    let http = reqwest::Client::new();
    let queries_before = tail_queries(&http, &base).await?;
    let admin = Auth::Admin.headers(data::admin_id(shape));
    let mut tallies = Vec::new();
    let mut clients = Vec::new();
    for i in 0..args.tail_clients {
        let (path, headers, user_id) = if i < admin_clients {
            ("/api/log/tail", admin.clone(), None)
        } else {
            // Users 1, 2, …: each tails its own rows.
            let id = ((i - admin_clients) as u32 % shape.users) + 1;
            let headers = vec![
                ("Authorization", data::access_token(id)),
                ("New-Api-User", id.to_string()),
            ];
            ("/api/log/self/tail", headers, Some(id))
        };
        let mut request = http.get(format!("{base}{path}"));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.send().await.context("opening a tail")?;
        anyhow::ensure!(
            response.status().is_success(),
            "{path} answered {}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
        let tally = Arc::new(Mutex::new(Tally {
            user_id,
            delivered: 0,
            lagged: 0,
            latency_ms: vec![0; MAX_LATENCY_MS + 1],
        }));
        tallies.push(tally.clone());
        clients.push(tokio::spawn(read(response, tally)));
    }
    let cpu_before = (cpu_secs(api.pid()), cpu_secs(std::process::id()));
    Ok(Tailing {
        api,
        http,
        base,
        tallies,
        clients,
        admin_clients,
        queries_before,
        cpu_before,
        started: Instant::now(),
    })
}

/// Counts one stream's rows until it ends or is aborted.
async fn read(response: reqwest::Response, tally: Arc<Mutex<Tally>>) {
    let mut events = response.bytes_stream().eventsource();
    while let Some(Ok(event)) = events.next().await {
        let arrived_ms = (crate::now_unix() * 1000.0) as u64;
        let mut tally = tally.lock().unwrap_or_else(PoisonError::into_inner);
        if event.event == "lagged" {
            tally.lagged += 1;
            continue;
        }
        // The request id is all that is needed of the row: found without parsing the JSON,
        // so that the clients' own CPU bounds the figure as little as possible.
        let Some(published_ms) = published_ms(&event.data) else {
            continue;
        };
        tally.delivered += 1;
        let latency = arrived_ms.saturating_sub(published_ms) as usize;
        tally.latency_ms[latency.min(MAX_LATENCY_MS)] += 1;
    }
}

/// The publication time in a row's `"request_id":"<STAMP><ms>"`.
fn published_ms(data: &str) -> Option<u64> {
    const KEY: &str = "\"request_id\":\"";
    let rest = data[data.find(KEY)? + KEY.len()..].strip_prefix(STAMP)?;
    rest[..rest.find('"')?].parse().ok()
}

impl Tailing {
    /// Waits (up to `wait`) until every client has what it is due (`expected` rows for an
    /// admin, `per_user` rows of its user for the others), then stops the clients and the API.
    pub(crate) async fn finish(
        mut self,
        rate: f64,
        expected: u64,
        per_user: &std::collections::HashMap<u32, u64>,
        wait: Duration,
    ) -> Result<TailRun> {
        let due = |t: &Tally| {
            t.user_id
                .map_or(expected, |id| per_user.get(&id).copied().unwrap_or(0))
        };
        let until = Instant::now() + wait;
        while Instant::now() < until {
            let behind = self.tallies.iter().any(|t| {
                let t = t.lock().unwrap_or_else(PoisonError::into_inner);
                t.delivered < due(&t)
            });
            if !behind {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let secs = self.started.elapsed().as_secs_f64();
        let queries = tail_queries(&self.http, &self.base).await? - self.queries_before;
        let api_cpu = cpu_secs(self.api.pid()) - self.cpu_before.0;
        let clients_cpu = cpu_secs(std::process::id()) - self.cpu_before.1;
        for client in &self.clients {
            client.abort();
        }
        let mut run = TailRun {
            clients: self.tallies.len(),
            admin_clients: self.admin_clients,
            rate,
            secs,
            queries_per_sec: queries / secs.max(1e-9),
            api_cpu_pct: api_cpu / secs.max(1e-9) * 100.0,
            clients_cpu_pct: clients_cpu / secs.max(1e-9) * 100.0,
            ..TailRun::default()
        };
        let mut latency = vec![0u64; MAX_LATENCY_MS + 1];
        for tally in &self.tallies {
            let t = tally.lock().unwrap_or_else(PoisonError::into_inner);
            run.delivered += t.delivered;
            run.expected += due(&t);
            run.lagged += t.lagged;
            run.exact_clients += usize::from(t.delivered == due(&t));
            for (ms, n) in t.latency_ms.iter().enumerate() {
                latency[ms] += u64::from(*n);
            }
        }
        run.p50_ms = quantile_ms(&latency, 0.5);
        run.p99_ms = quantile_ms(&latency, 0.99);
        run.max_ms = latency.iter().rposition(|n| *n > 0).unwrap_or(0) as f64;
        self.api.stop(Duration::from_secs(10)).await?;
        Ok(run)
    }
}

/// CPU seconds (user + system) process `pid` has used so far.
fn cpu_secs(pid: u32) -> f64 {
    logbus::proc_usage(pid).map_or(0.0, |(_, cpu)| cpu)
}

/// The `q` quantile of 1 ms buckets.
fn quantile_ms(buckets: &[u64], q: f64) -> f64 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    let rank = ((total as f64 * q).ceil() as u64).max(1);
    let mut seen = 0;
    for (ms, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return ms as f64;
        }
    }
    (buckets.len() - 1) as f64
}

/// ClickHouse queries of the tail kinds the API has sent so far (its `/metrics`).
async fn tail_queries(http: &reqwest::Client, base: &str) -> Result<f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(queries_of_kinds(&text, &TAIL_QUERY_KINDS))
}

/// Sums the query-duration histogram's `_count` lines of `kinds` in Prometheus text.
fn queries_of_kinds(text: &str, kinds: &[&str]) -> f64 {
    text.lines()
        .filter(|line| line.starts_with("logbus_api_clickhouse_query_duration_seconds_count{"))
        .filter(|line| {
            kinds
                .iter()
                .any(|k| line.contains(&format!("kind=\"{k}\"")))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The results' section.
pub(crate) fn report_section(run: &TailRun) -> String {
    let mut s = String::from("\n## Live tail\n\n");
    if let Some(e) = &run.error {
        s.push_str(&format!("- **failed:** {e}\n"));
        return s;
    }
    s.push_str(&format!(
        "{} Server-Sent-Events clients on one query API ({} admins on `/api/log/tail` seeing \
         every row, {} users on `/api/log/self/tail` seeing their own) while the benchmark \
         published {:.0} events/s over a {:.0} s window after the freshness step's (half the \
         measured ingest rate, each event stamped `tail-<ms>`). Latency runs from \
         publication to the client's receipt of the row; it includes the worker's flush \
         (`--flush-interval-ms` 200), the tail's settle time (`--tail-settle-ms` 500) and its \
         poll (`--tail-poll-ms` 250). The clients run in the benchmark's process on the same \
         2 cores as the broker, ClickHouse, the worker and the API.\n\n",
        run.clients,
        run.admin_clients,
        run.clients - run.admin_clients,
        run.rate,
        run.secs,
    ));
    s.push_str("| figure | value |\n|---|---|\n");
    s.push_str(&format!(
        "| delivery latency p50 / p99 / max | {:.0} / {:.0} / {:.0} ms |\n",
        run.p50_ms, run.p99_ms, run.max_ms
    ));
    s.push_str(&format!(
        "| ingest freshness of the same rows p50 / p99 (included in the latency) | {:.0} / {:.0} ms |\n",
        run.fresh_p50_ms, run.fresh_p99_ms
    ));
    s.push_str(&format!(
        "| rows delivered / due (all clients) | {} / {} ({} of {} clients exact; {} `lagged` endings) |\n",
        run.delivered, run.expected, run.exact_clients, run.clients, run.lagged
    ));
    s.push_str(&format!(
        "| ClickHouse queries spent on tailing | {:.1}/s (kinds {}) |\n",
        run.queries_per_sec,
        TAIL_QUERY_KINDS.join(", ")
    ));
    s.push_str(&format!(
        "| CPU over the window: query API / the benchmark's clients and producer | {:.0}% / {:.0}% of one core (of 2) |\n",
        run.api_cpu_pct, run.clients_cpu_pct
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publication_time_is_read_from_the_request_id() {
        let data = r#"{"id":1,"request_id":"tail-1733600000123","content":"x"}"#;
        assert_eq!(published_ms(data), Some(1_733_600_000_123));
        assert_eq!(published_ms(r#"{"request_id":"r-1"}"#), None);
    }

    #[test]
    fn quantiles_of_millisecond_buckets() {
        let mut buckets = vec![0u64; 10];
        buckets[3] = 98;
        buckets[7] = 2;
        assert_eq!(quantile_ms(&buckets, 0.5), 3.0);
        assert_eq!(quantile_ms(&buckets, 0.99), 7.0);
        assert!(quantile_ms(&[0, 0], 0.5).is_nan());
    }

    #[test]
    fn tail_queries_are_summed_from_the_histograms_counts() {
        let text = "\
logbus_api_clickhouse_query_duration_seconds_count{kind=\"tail_read\"} 40
logbus_api_clickhouse_query_duration_seconds_count{kind=\"tail_catch_up\"} 2
logbus_api_clickhouse_query_duration_seconds_count{kind=\"list\"} 9
logbus_api_clickhouse_query_duration_seconds_sum{kind=\"tail_read\"} 1.5";
        assert_eq!(queries_of_kinds(text, &TAIL_QUERY_KINDS), 42.0);
    }
}
