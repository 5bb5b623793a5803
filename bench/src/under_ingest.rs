//! The query cases measured once more while a worker writes freshly generated events into the
//! same database at half the ingest rate measured earlier in the run: queries during ingest are
//! the normal case, and on the dev stack they share the engine (and its 2 cores) with the
//! inserts.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::background::{BackgroundIngest, Target};
use crate::data::Shape;
use crate::queries::{self, Http, Lat};

/// The worker's /healthz, /readyz and /metrics (the load's is 9479).
const INGEST_HTTP_ADDR: &str = "127.0.0.1:9480";
/// Longest one case is measured here (the quiet pass's budget may be longer).
const CASE_BUDGET: Duration = Duration::from_secs(8);

/// What the pass measured.
#[derive(Debug, Default)]
pub(crate) struct UnderIngest {
    pub rate: f64,
    pub rate_source: String,
    /// (case, logbus's latencies under ingest)
    pub cases: Vec<(String, Lat)>,
    pub secs: f64,
    pub published: u64,
    pub ingested: u64,
    pub caught_up_secs: Option<f64>,
    pub error: Option<String>,
}

/// Runs every query case through `http` while ingest writes `rate` events/s into `db`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn measure(
    cfg: &crate::Config,
    shape: &Shape,
    http: &Http,
    ch: &clickhouse::Client,
    work_dir: &Path,
    db: &str,
    u: &mut UnderIngest,
) -> Result<()> {
    let target = Target::of(cfg, db, "under-ingest", INGEST_HTTP_ADDR, cfg.seed + 4);
    let mut ingest = BackgroundIngest::start(&target, shape, u.rate, ch, work_dir).await?;
    let start = Instant::now();
    let budget = CASE_BUDGET.min(Duration::from_secs(cfg.query_secs));
    for case in queries::cases(shape, &cfg.keyword, &cfg.rare_keyword) {
        let lat = queries::run_http(http, &case, cfg.iterations, budget).await;
        eprintln!(
            "bench: under ingest {:<40} logbus p50 {:>8.1} p99 {:>8.1} ms {}",
            case.name,
            lat.p50_ms,
            lat.p99_ms,
            lat.error.as_deref().unwrap_or("")
        );
        u.cases.push((case.name.to_string(), lat));
        ingest.check_running()?;
    }
    u.secs = start.elapsed().as_secs_f64();
    u.published = ingest.published();
    u.ingested = ingest.ingested(ch).await?;
    let finished = ingest.finish(ch, Duration::from_secs(120)).await?;
    u.caught_up_secs = finished.caught_up_secs;
    eprintln!(
        "bench: under ingest: {:.0} events/s published (target {:.0}), {:.0} rows/s counted over {:.0} s",
        u.published as f64 / u.secs.max(1e-9),
        u.rate,
        u.ingested as f64 / u.secs.max(1e-9),
        u.secs
    );
    Ok(())
}

/// The results' section: each case quiet (from the main table) and under ingest.
pub(crate) fn report_section(u: &UnderIngest, quiet: &[(String, Lat, Lat)]) -> String {
    let mut s = String::from("\n## Queries during ingest\n\n");
    if let Some(e) = &u.error {
        s.push_str(&format!("- **failed:** {e}\n"));
        if u.cases.is_empty() {
            return s;
        }
    }
    s.push_str(&format!(
        "The query cases once more, one request at a time, while a worker wrote new events into \
         the same database: target {:.0} events/s ({}); {:.0} events/s published and {:.0} rows/s \
         written during the {:.0} s of the pass; the backlog was {} after the pass. PostgreSQL's \
         figures are from the quiet pass (no writes to it meanwhile).\n\n",
        u.rate,
        u.rate_source,
        u.published as f64 / u.secs.max(1e-9),
        u.ingested as f64 / u.secs.max(1e-9),
        u.secs,
        u.caught_up_secs.map_or_else(
            || "not cleared within 120 s".to_string(),
            |c| format!("cleared {c:.1} s")
        ),
    ));
    s.push_str("| case | logbus quiet p50 / p99 | logbus under ingest p50 / p99 | PostgreSQL quiet p50 | under ingest vs PostgreSQL (p50) |\n");
    s.push_str("|---|---|---|---|---|\n");
    for (name, busy) in &u.cases {
        let Some((_, calm, pg)) = quiet.iter().find(|(n, _, _)| n == name) else {
            continue;
        };
        s.push_str(&format!(
            "| {name} | {:.1} / {:.1} ms | {:.1} / {:.1} ms{} | {:.1} ms | {} |\n",
            calm.p50_ms,
            calm.p99_ms,
            busy.p50_ms,
            busy.p99_ms,
            busy.error.as_deref().map_or_else(String::new, |e| format!(
                " (error: {})",
                e.replace('|', "/")
            )),
            pg.p50_ms,
            crate::ratio(pg.p50_ms, busy.p50_ms),
        ));
    }
    s
}
