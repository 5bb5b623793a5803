//! The logbus side: ClickHouse loading and storage figures, the ingest worker and query API as
//! child processes (their release binaries), Kafka produce / raw consume.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clickhouse::Client;
use logbus_devstack::{ChFront, Process};
use logbus_projections::rows::{LogRow, TokenRow, UserRow};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

pub(crate) fn ch(url: &str) -> Client {
    Client::default()
        .with_url(url)
        .with_validation(false)
        .with_setting("async_insert", "0")
}

/// A fresh database with the logbus schema.
pub(crate) async fn fresh_database(url: &str, db: &str) -> Result<Client> {
    let c = ch(url);
    c.query(&format!("DROP DATABASE IF EXISTS `{db}`"))
        .execute()
        .await
        .context("dropping the bench database")?;
    logbus_projections::migrate(&c, db, Default::default())
        .await
        .context("migrating the bench database")?;
    Ok(c.with_database(db))
}

pub(crate) async fn insert_rows(c: &Client, rows: &[LogRow]) -> Result<()> {
    let mut ins = c.insert::<LogRow>("logs").await?;
    for r in rows {
        ins.write(r).await?;
    }
    ins.end().await?;
    Ok(())
}

pub(crate) async fn insert_identity(
    c: &Client,
    users: &[UserRow],
    tokens: &[TokenRow],
) -> Result<()> {
    let mut ins = c.insert::<UserRow>("users").await?;
    for r in users {
        ins.write(r).await?;
    }
    ins.end().await?;
    let mut ins = c.insert::<TokenRow>("tokens").await?;
    for r in tokens {
        ins.write(r).await?;
    }
    ins.end().await?;
    Ok(())
}

pub(crate) async fn count(c: &Client, table: &str) -> Result<u64> {
    Ok(c.query(&format!("SELECT count() FROM {table}"))
        .fetch_one::<u64>()
        .await?)
}

/// Tables that are not the log store (bookkeeping and the identity tables, which new-api
/// keeps in tables of their own too): every other table counts — `logs`, the rollups, and
/// whatever a later migration adds.
const NOT_LOG_STORE: &str = "('schema_migrations', 'ingest_batches', 'users', 'tokens')";

/// (bytes on disk of the active parts of the log store's tables, projections included, rows
/// of logs, the tables counted).
pub(crate) async fn storage(c: &Client, db: &str) -> Result<(u64, u64, Vec<String>)> {
    let tables = c
        .query(&format!(
            "SELECT table, toUInt64(sum(bytes_on_disk)) FROM system.parts WHERE active \
             AND database = ? AND table NOT IN {NOT_LOG_STORE} GROUP BY table ORDER BY table"
        ))
        .bind(db)
        .fetch_all::<(String, u64)>()
        .await?;
    let bytes = tables.iter().map(|(_, b)| b).sum();
    let names = tables.into_iter().map(|(t, _)| t).collect();
    Ok((bytes, count(c, "logs").await?, names))
}

/// Starts a logbus release binary with `envs` and its output appended to `log`; the
/// [`Process`] is SIGKILLed if dropped before it is stopped.
pub(crate) fn spawn_service(bin: &Path, envs: &[(&str, String)], log: &Path) -> Result<Process> {
    spawn_service_with_args(bin, &[], envs, log)
}

/// [`spawn_service`] with command-line arguments.
pub(crate) fn spawn_service_with_args(
    bin: &Path,
    args: &[&str],
    envs: &[(&str, String)],
    log: &Path,
) -> Result<Process> {
    if !bin.exists() {
        bail!(
            "{} not built: run `cargo build --release -p logbus-ingest -p logbus-query-api -p logbus-bridge`",
            bin.display()
        );
    }
    let mut cmd = Command::new(bin);
    cmd.args(args);
    // LOGBUS_BENCH_LOG: the children's RUST_LOG, e.g. `logbus_ingest=debug` to see per-batch
    // timings in .devstack/bench/ingest.log.
    cmd.env(
        "RUST_LOG",
        std::env::var("LOGBUS_BENCH_LOG").unwrap_or_else(|_| "warn".to_owned()),
    );
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let name = bin
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    Ok(Process::spawn(&name, &mut cmd, log)?)
}

/// A `logbus-query-api` child on `port` over `db` (with `extra` environment), returned once it
/// answers.
pub(crate) async fn start_query_api(
    port: u16,
    clickhouse_url: &str,
    db: &str,
    extra: &[(&str, String)],
    log: &Path,
) -> Result<Process> {
    let mut envs = vec![
        ("LOGBUS_API_LISTEN", format!("127.0.0.1:{port}")),
        ("LOGBUS_CLICKHOUSE_URL", clickhouse_url.to_owned()),
        ("LOGBUS_CLICKHOUSE_DATABASE", db.to_owned()),
    ];
    envs.extend(extra.iter().cloned());
    let mut api = spawn_service(&release_bin("logbus-query-api"), &envs, log)?;
    let client = reqwest::Client::new();
    let ready = Instant::now();
    while client
        .get(format!("http://127.0.0.1:{port}/api/status"))
        .send()
        .await
        .is_err()
    {
        anyhow::ensure!(
            api.exited().is_none(),
            "logbus-query-api exited: see {}",
            log.display()
        );
        anyhow::ensure!(
            ready.elapsed() < Duration::from_secs(30),
            "logbus-query-api did not listen in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(api)
}

pub(crate) fn release_bin(name: &str) -> PathBuf {
    let root = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").to_string());
    PathBuf::from(root).join("release").join(name)
}

/// Peak RSS (VmHWM, bytes) and CPU seconds (utime + stime) of a live process.
pub(crate) fn proc_usage(pid: u32) -> Option<(u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()?
        * 1024;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat are utime and stime; `after` starts at field 3.
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some((hwm, ticks / clock_ticks()))
}

/// The CPU process `pid` used since it had used `cpu0` seconds (from [`proc_usage`]), over
/// `secs` of wall time, in percent of one core; `None` without a process or a start reading.
pub(crate) fn cpu_percent_since(pid: Option<u32>, cpu0: Option<f64>, secs: f64) -> Option<f64> {
    let (_, cpu1) = proc_usage(pid?)?;
    Some((cpu1 - cpu0?) / secs.max(1e-9) * 100.0)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

pub(crate) async fn create_topics(brokers: &str, topics: &[&str], partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let res = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await?;
    for r in res {
        if let Err((t, e)) = r
            && e != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
        {
            bail!("creating topic {t}: {e}");
        }
    }
    Ok(())
}

/// Deletes the benchmark's topics (the dev broker keeps them in memory).
pub(crate) async fn delete_topics(brokers: &str, topics: &[&str]) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    admin
        .delete_topics(
            topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(20))),
        )
        .await?;
    Ok(())
}

pub(crate) fn producer(brokers: &str) -> Result<ThreadedProducer<DefaultProducerContext>> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "500000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .create()?)
}

/// Sends one event keyed by user id, waiting while the local queue is full.
pub(crate) fn send(
    p: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    key: &str,
    payload: &str,
) {
    let mut rec = BaseRecord::to(topic).key(key).payload(payload);
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((e, r)) => {
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) {
                    std::thread::sleep(Duration::from_millis(2));
                    rec = r;
                } else {
                    eprintln!("bench: produce error: {e}");
                    return;
                }
            }
        }
    }
}

/// Publishes `next(n)` (the `n`-th event, keyed by its user id) to `topic` at `rate` per second
/// until `done(n)` says `n` events are enough; blocks, and returns how many were published
/// (all flushed).
pub(crate) fn publish_paced(
    brokers: &str,
    topic: &str,
    rate: f64,
    mut done: impl FnMut(u64) -> bool,
    mut next: impl FnMut(u64) -> LogRow,
) -> Result<u64> {
    let p = producer(brokers)?;
    let start = Instant::now();
    let mut sent = 0u64;
    while !done(sent) {
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        while sent < due && !done(sent) {
            let row = next(sent);
            send(
                &p,
                topic,
                &row.user_id.to_string(),
                &crate::data::event_json(&row),
            );
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    flush(&p)?;
    Ok(sent)
}

pub(crate) fn flush(p: &ThreadedProducer<DefaultProducerContext>) -> Result<()> {
    p.flush(Duration::from_secs(300))?;
    Ok(())
}

/// The broker's raw consume rate: an rdkafka consumer that only counts messages of `topic`
/// from the beginning until `expected`. Returns (messages, seconds).
pub(crate) fn raw_consume(
    brokers: &str,
    topic: &str,
    expected: u64,
    timeout: Duration,
) -> Result<(u64, f64)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("bench-raw-{}", std::process::id()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("fetch.wait.max.ms", "100")
        .create()?;
    c.subscribe(&[topic])?;
    let deadline = Instant::now() + timeout;
    let mut n = 0u64;
    let mut start: Option<Instant> = None;
    while n < expected && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            m?;
            start.get_or_insert_with(Instant::now);
            n += 1;
        }
    }
    let secs = start.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
    Ok((n, secs))
}

/// Starts the dev stack's ClickHouse front on 127.0.0.1:`port` with a fresh data dir under
/// `work_dir`.
pub(crate) async fn start_chfront(work_dir: &Path, port: u16) -> Result<ChFront> {
    let data = work_dir.join("clickhouse");
    if data.exists() {
        std::fs::remove_dir_all(&data)?;
    }
    let log = work_dir.join("chfront.log");
    let _ = std::fs::remove_file(&log);
    Ok(ChFront::start(port, data, log).await?)
}

/// Largest contributors to logbus's bytes on disk: (name, compressed bytes), columns of the
/// log store's tables, the skip indexes of `logs` and projections.
pub(crate) async fn storage_breakdown(c: &Client, db: &str) -> Result<Vec<(String, u64)>> {
    let mut out = c
        .query(
            &format!(
                "SELECT concat(table, '.', name), toUInt64(data_compressed_bytes) \
                 FROM system.columns WHERE database = ? AND table NOT IN {NOT_LOG_STORE} \
                 UNION ALL SELECT concat(table, ' index ', name), toUInt64(data_compressed_bytes) \
                 FROM system.data_skipping_indices WHERE database = ? AND table = 'logs' \
                 UNION ALL SELECT concat(table, ' projection ', name), toUInt64(sum(bytes_on_disk)) \
                 FROM system.projection_parts WHERE active AND database = ? \
                 GROUP BY table, name",
            ),
        )
        .bind(db)
        .bind(db)
        .bind(db)
        .fetch_all::<(String, u64)>()
        .await?;
    out.sort_by_key(|b| std::cmp::Reverse(b.1));
    Ok(out)
}
