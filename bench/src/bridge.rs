//! The bridge's backfill, end to end: new-api's PostgreSQL `logs` (the query data set, already
//! COPY-ed there by the query suite) published by `logbus-bridge backfill` and stored by a
//! `logbus-ingest` child into a fresh database. The first backfill is SIGKILLed once its
//! checkpoint passes half of the rows; a second one resumes. ClickHouse must then hold each
//! row exactly once (count, distinct event ids, sum of quota against PostgreSQL's).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use logbus_bridge::checkpoint::CheckpointFile;
use logbus_bridge::dialect::Dialect;
use logbus_bridge::mapping::namespace_uuid;
use logbus_bridge::newapi_schema::create_statements;
use logbus_bridge::sample;
use nix::sys::signal::Signal;

use crate::data::{Generator, Shape};
use crate::logbus;
use crate::pg;

/// What one bridge run measured.
#[derive(Debug, Default)]
pub(crate) struct BridgeRun {
    pub source_rows: u64,
    pub source_quota: i64,
    /// The checkpoint's id when the first backfill was SIGKILLed.
    pub killed_at_id: i64,
    /// First backfill start → SIGKILL.
    pub first_secs: f64,
    /// Resumed backfill start → its exit.
    pub resume_secs: f64,
    /// First backfill start → every row counted in ClickHouse (kill and restart included).
    pub end_to_end_secs: f64,
    pub stored_rows: u64,
    pub distinct_event_ids: u64,
    pub stored_quota: i64,
    pub bridge_peak_rss: u64,
    pub error: Option<String>,
}

impl BridgeRun {
    pub(crate) fn exactly_once(&self) -> bool {
        self.stored_rows == self.source_rows
            && self.distinct_event_ids == self.source_rows
            && self.stored_quota == self.source_quota
    }
}

const NAMESPACE: &str = "bench-new-api";
/// Users and tokens (two each) put beside `logs`: new-api's identity tables, read first.
const USERS: usize = 2_000;

/// Adds new-api's `users`, `tokens` and `channels` tables beside the bench's `logs`.
async fn add_identity_tables(pgc: &tokio_postgres::Client) -> Result<()> {
    for statement in create_statements(Dialect::Postgres) {
        if statement.starts_with("CREATE TABLE logs") || statement.contains(" ON logs ") {
            continue;
        }
        let statement = statement.replacen("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ", 1);
        let statement = statement.replacen("INDEX ", "INDEX IF NOT EXISTS ", 1);
        pgc.batch_execute(&statement).await?;
    }
    pgc.batch_execute("TRUNCATE users, tokens, channels")
        .await?;
    let users = sample::users(7, USERS);
    let tokens = sample::tokens(7, &users, 2);
    pgc.batch_execute(&sample::insert_users(Dialect::Postgres, &users))
        .await?;
    pgc.batch_execute(&sample::insert_tokens(Dialect::Postgres, &tokens))
        .await?;
    pgc.batch_execute(&sample::insert_channels(Dialect::Postgres))
        .await?;
    Ok(())
}

/// `--bridge-only`: the query data set into new-api's PostgreSQL `logs`, as the query suite
/// loads it, without the ClickHouse side and without the secondary indexes (the bridge reads
/// by primary key only; building them is minutes of the machine's two cores).
pub(crate) async fn load_source(pg: &pg::Postgres, shape: Shape) -> Result<()> {
    let pgc = pg.connect().await?;
    pg::create_schema(&pgc, false).await?;
    let rows = shape.rows;
    let mut generator = Generator::with_shape(shape);
    let (mut loaded, t) = (0u64, Instant::now());
    while let Some(chunk) = generator.next_chunk(250_000) {
        pg::copy_in(&pgc, pg::copy_chunk(&chunk)).await?;
        loaded += chunk.len() as u64;
        eprintln!(
            "bench: bridge source {loaded}/{rows} rows COPY-ed ({:.0} s)",
            t.elapsed().as_secs_f64()
        );
    }
    pgc.batch_execute("ANALYZE logs").await?;
    Ok(())
}

pub(crate) async fn measure(
    brokers: &str,
    clickhouse_url: &str,
    work_dir: &Path,
    pg: &pg::Postgres,
    r: &mut BridgeRun,
) -> Result<()> {
    let pgc = pg.connect().await?;
    let row = pgc
        .query_one(
            "SELECT count(*)::bigint, COALESCE(sum(quota), 0)::bigint FROM logs",
            &[],
        )
        .await?;
    r.source_rows = row.get::<_, i64>(0) as u64;
    r.source_quota = row.get(1);
    ensure!(r.source_rows > 0, "new-api's logs table is empty");
    add_identity_tables(&pgc).await?;

    let db = "logbus_bench_bridge";
    let run_id = format!("{}", crate::now_unix() as u64);
    let topics = [
        format!("bench.bridge.logs.{run_id}"),
        format!("bench.bridge.identity.{run_id}"),
        format!("bench.bridge.dlq.{run_id}"),
    ];
    let ch = logbus::fresh_database(clickhouse_url, db).await?;
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    logbus::create_topics(brokers, &topic_refs, 4).await?;
    let result = backfill_twice(brokers, clickhouse_url, db, &topics, work_dir, pg, &ch, r).await;
    logbus::delete_topics(brokers, &topic_refs).await?;
    result
}

#[allow(clippy::too_many_arguments)]
async fn backfill_twice(
    brokers: &str,
    clickhouse_url: &str,
    db: &str,
    topics: &[String; 3],
    work_dir: &Path,
    pg: &pg::Postgres,
    ch: &clickhouse::Client,
    r: &mut BridgeRun,
) -> Result<()> {
    let [logs_topic, identity_topic, dlq_topic] = topics;
    let ingest_env = vec![
        ("LOGBUS_KAFKA_BROKERS", brokers.to_owned()),
        ("LOGBUS_GROUP_ID", format!("bench-bridge-{logs_topic}")),
        ("LOGBUS_LOGS_TOPIC", logs_topic.clone()),
        ("LOGBUS_IDENTITY_TOPIC", identity_topic.clone()),
        ("LOGBUS_DLQ_TOPIC", dlq_topic.clone()),
        ("LOGBUS_CLICKHOUSE_URL", clickhouse_url.to_owned()),
        ("LOGBUS_CLICKHOUSE_DATABASE", db.to_owned()),
        ("LOGBUS_HTTP_ADDR", "127.0.0.1:9478".to_owned()),
    ];
    let mut worker = logbus::spawn_service(
        &logbus::release_bin("logbus-ingest"),
        &ingest_env,
        &work_dir.join("bridge-ingest.log"),
    )?;
    let checkpoint = work_dir.join("bridge-checkpoint.json");
    let _ = std::fs::remove_file(&checkpoint);
    let bridge_env = vec![
        ("LOGBUS_KAFKA_BROKERS", brokers.to_owned()),
        ("LOGBUS_LOGS_TOPIC", logs_topic.clone()),
        ("LOGBUS_IDENTITY_TOPIC", identity_topic.clone()),
        (
            "LOGBUS_BRIDGE_SQL_DSN",
            format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port),
        ),
        ("LOGBUS_BRIDGE_NAMESPACE", NAMESPACE.to_owned()),
        ("LOGBUS_BRIDGE_CHECKPOINT", checkpoint.display().to_string()),
        ("LOGBUS_BRIDGE_PROGRESS_INTERVAL_SECS", "10".to_owned()),
    ];
    let bridge_bin = logbus::release_bin("logbus-bridge");
    let bridge_log = work_dir.join("bridge.log");
    let file = CheckpointFile::new(&checkpoint);
    let namespace = namespace_uuid(NAMESPACE);
    let half = (r.source_rows / 2) as i64;

    // 1. A backfill SIGKILLed once its checkpoint passed half the rows.
    let t0 = Instant::now();
    let mut first = spawn_backfill(&bridge_bin, &bridge_env, &bridge_log)?;
    let limit = Duration::from_secs(600 + r.source_rows / 2_000);
    loop {
        if let Some(status) = first.exited() {
            bail!(
                "the first backfill exited ({status}) before half the rows: see {}",
                bridge_log.display()
            );
        }
        let high = file.load(namespace).await.map_or(0, |c| c.logs.high);
        if high >= half {
            r.bridge_peak_rss = logbus::proc_usage(first.pid()).map_or(0, |u| u.0);
            first.signal(Signal::SIGKILL)?;
            first.wait_exit(Duration::from_secs(10)).await?;
            r.first_secs = t0.elapsed().as_secs_f64();
            r.killed_at_id = file.load(namespace).await?.logs.high;
            break;
        }
        ensure!(
            t0.elapsed() < limit,
            "the first backfill did not reach half in {limit:?}"
        );
        worker.check_running()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "bench: bridge SIGKILLed at checkpoint id {} after {:.1} s",
        r.killed_at_id, r.first_secs
    );

    // 2. The resumed backfill runs to its end.
    let t1 = Instant::now();
    let mut second = spawn_backfill(&bridge_bin, &bridge_env, &bridge_log)?;
    let status = second.wait_exit(limit).await?;
    ensure!(
        status.success(),
        "the resumed backfill failed ({status}): see {}",
        bridge_log.display()
    );
    r.resume_secs = t1.elapsed().as_secs_f64();

    // 3. Every row counted in ClickHouse, once.
    let deadline = Instant::now() + limit;
    loop {
        r.stored_rows = logbus::count(ch, "logs").await?;
        if r.stored_rows >= r.source_rows {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "ClickHouse holds {} of {} rows after {limit:?}",
            r.stored_rows,
            r.source_rows
        );
        worker.check_running()?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    r.end_to_end_secs = t0.elapsed().as_secs_f64();
    // Anything still in flight would show up as more rows: give ingest a flush interval.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rows, distinct, quota) = ch
        .query("SELECT count(), uniqExact(event_id), toInt64(sum(quota)) FROM logs")
        .fetch_one::<(u64, u64, i64)>()
        .await
        .context("counting the bridged rows")?;
    (r.stored_rows, r.distinct_event_ids, r.stored_quota) = (rows, distinct, quota);
    worker.stop(Duration::from_secs(30)).await?;
    Ok(())
}

fn spawn_backfill(
    bin: &Path,
    envs: &[(&str, String)],
    log: &Path,
) -> Result<logbus_devstack::Process> {
    logbus::spawn_service_with_args(bin, &["backfill"], envs, log)
}

/// The results file's section for `r`.
pub(crate) fn report_section(r: &BridgeRun) -> String {
    let mut out =
        String::from("\n## Bridge backfill (new-api's PostgreSQL → Kafka → ClickHouse)\n\n");
    if let Some(error) = &r.error {
        out.push_str(&format!("The measurement failed: {error}\n"));
        return out;
    }
    let rate = |rows: f64, secs: f64| if secs > 0.0 { rows / secs } else { 0.0 };
    let first_rows = r.killed_at_id.max(0) as f64;
    out.push_str(&format!(
        "`logbus-bridge backfill` over the query data set's {rows} rows in new-api's PostgreSQL \
         `logs` table (plus {USERS} users and their tokens), into a fresh database through a \
         `logbus-ingest` child; the first backfill SIGKILLed once its checkpoint passed half of \
         the rows, then a second one resumed from the checkpoint.\n\n\
         | figure | value |\n|---|---|\n\
         | rows in PostgreSQL / sum(quota) | {rows} / {quota} |\n\
         | first backfill: SIGKILLed at checkpoint id | {killed} after {first:.1} s ({first_rate:.0} rows/s published) |\n\
         | resumed backfill: ran to its end | {resume:.1} s |\n\
         | end to end (first start → every row counted in ClickHouse, kill and restart included) | {e2e:.1} s, **{e2e_rate:.0} rows/s** |\n\
         | ClickHouse: rows / distinct event ids / sum(quota) | {stored} / {distinct} / {stored_quota} |\n\
         | exactly once | **{once}** |\n\
         | bridge peak RSS (VmHWM at the SIGKILL) | {rss:.0} MiB |\n",
        rows = r.source_rows,
        quota = r.source_quota,
        killed = r.killed_at_id,
        first = r.first_secs,
        first_rate = rate(first_rows, r.first_secs),
        resume = r.resume_secs,
        e2e = r.end_to_end_secs,
        e2e_rate = rate(r.source_rows as f64, r.end_to_end_secs),
        stored = r.stored_rows,
        distinct = r.distinct_event_ids,
        stored_quota = r.stored_quota,
        once = if r.exactly_once() { "yes" } else { "NO" },
        rss = r.bridge_peak_rss as f64 / 1_048_576.0,
    ));
    out.push_str(
        "\nThe end-to-end rate is bounded by the ingest worker and the ClickHouse front (one \
         query at a time), which share the machine's 2 cores with the bridge, Kafka and \
         PostgreSQL; the bridge's own publish rate is the first backfill's.\n",
    );
    out
}
