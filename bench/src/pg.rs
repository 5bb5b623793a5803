//! The peer baseline: new-api's `logs` table on PostgreSQL (the Debian package), started by the
//! benchmark on a loopback port with its data under `.devstack/bench/pg`, and the SQL new-api's
//! GORM code issues against it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::SinkExt;
use logbus_projections::rows::LogRow;
use tokio_postgres::{Client, NoTls};

/// new-api's `logs` table (model/log.go) as GORM creates it on PostgreSQL, with the indexes
/// the issue lists.
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE logs (
    id bigserial PRIMARY KEY,
    user_id bigint,
    created_at bigint,
    type bigint,
    content text,
    username text DEFAULT '',
    token_name text DEFAULT '',
    model_name text DEFAULT '',
    quota bigint DEFAULT 0,
    prompt_tokens bigint DEFAULT 0,
    completion_tokens bigint DEFAULT 0,
    use_time bigint DEFAULT 0,
    is_stream boolean,
    channel_id bigint,
    token_id bigint DEFAULT 0,
    "group" text,
    ip text DEFAULT '',
    other text
);
"#;

pub(crate) const INDEXES: &[&str] = &[
    "CREATE INDEX idx_created_at_id ON logs (created_at, id)",
    "CREATE INDEX idx_user_id_id ON logs (user_id, id)",
    "CREATE INDEX idx_logs_type ON logs (type)",
    "CREATE INDEX idx_logs_username ON logs (username)",
    "CREATE INDEX idx_logs_token_name ON logs (token_name)",
    "CREATE INDEX idx_logs_model_name ON logs (model_name)",
    "CREATE INDEX idx_logs_channel_id ON logs (channel_id)",
    "CREATE INDEX idx_logs_group ON logs (\"group\")",
];

const COLUMNS: &str = "user_id, created_at, type, content, username, token_name, model_name, \
    quota, prompt_tokens, completion_tokens, use_time, is_stream, channel_id, token_id, \"group\", ip, other";

pub(crate) struct Postgres {
    pub bin: PathBuf,
    pub data: PathBuf,
    pub port: u16,
    pub version: String,
    as_postgres: bool,
}

fn find_bin() -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL is not installed (/usr/lib/postgresql missing): run `make install` (devstack/system-packages.sh)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("postgres").exists())
        .collect();
    found.sort();
    found.pop().context(
        "no /usr/lib/postgresql/*/bin/postgres: run `make install` (devstack/system-packages.sh)",
    )
}

impl Postgres {
    /// A fresh cluster (the old one, if any, is stopped and removed) on 127.0.0.1:`port`.
    pub(crate) fn start(dir: &Path, port: u16, shared_buffers: &str) -> Result<Postgres> {
        let bin = find_bin()?;
        let as_postgres = is_root();
        let data = dir.join("pg");
        let pg = Postgres {
            version: String::from_utf8_lossy(
                &Command::new(bin.join("postgres"))
                    .arg("--version")
                    .output()?
                    .stdout,
            )
            .trim()
            .to_string(),
            bin,
            data: data.clone(),
            port,
            as_postgres,
        };
        pg.stop();
        if data.exists() {
            std::fs::remove_dir_all(&data)?;
        }
        std::fs::create_dir_all(&data)?;
        if as_postgres {
            // postgres must own its data dir and reach it.
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&data))?;
            let mut p = data.parent();
            while let Some(d) = p {
                let _ = Command::new("chmod").arg("o+x").arg(d).status();
                p = d.parent();
            }
        }
        run(pg
            .cmd("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "-D",
            ])
            .arg(&data))?;
        // Tuned as a dedicated gateway log database on this machine would be (durable commits
        // kept: a gateway's INSERT waits for its commit).
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             shared_buffers = {shared_buffers}\neffective_cache_size = 12GB\nwork_mem = 64MB\n\
             maintenance_work_mem = 1GB\nmax_wal_size = 8GB\ncheckpoint_timeout = 15min\n\
             max_parallel_workers_per_gather = 2\nmax_connections = 50\n",
            data.display()
        );
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))?;
        std::io::Write::write_all(&mut f, conf.as_bytes())?;
        run(pg
            .cmd("pg_ctl")
            .args(["-w", "-t", "60", "-D"])
            .arg(&data)
            .arg("-l")
            .arg(data.join("server.log"))
            .arg("start"))?;
        Ok(pg)
    }

    fn cmd(&self, tool: &str) -> Command {
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            c
        } else {
            Command::new(self.bin.join(tool))
        }
    }

    /// Stops the cluster named by the data dir's pid file, if it runs.
    pub(crate) fn stop(&self) {
        let pidfile = self.data.join("postmaster.pid");
        if pidfile.exists() {
            let _ = self
                .cmd("pg_ctl")
                .args(["-w", "-t", "60", "-m", "fast", "-D"])
                .arg(&self.data)
                .arg("stop")
                .status();
        }
    }

    pub(crate) async fn connect(&self) -> Result<Client> {
        let (client, conn) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres",
                self.port
            ),
            NoTls,
        )
        .await
        .context("connecting to the baseline PostgreSQL")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

pub(crate) async fn create_schema(c: &Client, with_indexes: bool) -> Result<()> {
    c.batch_execute("DROP TABLE IF EXISTS logs").await?;
    c.batch_execute(SCHEMA).await?;
    if with_indexes {
        for i in INDEXES {
            c.batch_execute(i).await?;
        }
    }
    Ok(())
}

pub(crate) async fn create_indexes(c: &Client) -> Result<()> {
    for i in INDEXES {
        c.batch_execute(i).await?;
    }
    c.batch_execute("VACUUM ANALYZE logs").await?;
    Ok(())
}

/// new-api's `quota_data` (model/usedata.go) as GORM creates it on PostgreSQL, with its three
/// indexes, filled as its flush loop would fill it from the same logs: one row per (user,
/// username, model, UTC hour) of the consume logs, `token_used` = prompt + completion tokens.
/// (The flush loop's duplicate rows across nodes are not modelled: one node, fully flushed.)
const QUOTA_DATA: &[&str] = &[
    "DROP TABLE IF EXISTS quota_data",
    "CREATE TABLE quota_data (id bigserial PRIMARY KEY, user_id bigint, \
     username varchar(64) DEFAULT '', model_name varchar(64) DEFAULT '', created_at bigint, \
     token_used bigint DEFAULT 0, count bigint DEFAULT 0, quota bigint DEFAULT 0)",
    "INSERT INTO quota_data (user_id, username, model_name, created_at, token_used, count, quota) \
     SELECT user_id, username, model_name, created_at - created_at % 3600, \
     sum(prompt_tokens + completion_tokens), count(*), sum(quota) FROM logs WHERE type = 2 \
     GROUP BY 1, 2, 3, 4 ORDER BY 4",
    "CREATE INDEX idx_quota_data_user_id ON quota_data (user_id)",
    "CREATE INDEX idx_qdt_model_user_name ON quota_data (model_name, username)",
    "CREATE INDEX idx_qdt_created_at ON quota_data (created_at)",
    "VACUUM ANALYZE quota_data",
];

/// Builds [`QUOTA_DATA`] from `logs`; returns its row count.
pub(crate) async fn build_quota_data(c: &Client) -> Result<i64> {
    for statement in QUOTA_DATA {
        c.batch_execute(statement).await?;
    }
    Ok(c.query_one("SELECT count(*) FROM quota_data", &[])
        .await?
        .get(0))
}

/// How a baseline writer writes its rows.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Write {
    /// Each row one autocommitted `INSERT ... RETURNING id` (what GORM's `Create` sends for
    /// each of new-api's requests).
    SingleRow,
    /// One autocommitted multi-row `INSERT ... VALUES (...), (...)` per batch.
    MultiRowInsert,
    /// One `COPY logs FROM STDIN` per batch.
    Copy,
}

/// `writers` connections, each taking the next `batch` rows and writing them (`how`) into the
/// table, until all rows are in or `limit` has passed: new-api's request handlers
/// ([`Write::SingleRow`], batches of 1), or what a gateway that buffered its logs could do on
/// PostgreSQL. Returns (rows, seconds).
pub(crate) async fn write_rows(
    pg: &Postgres,
    rows: Arc<Vec<LogRow>>,
    writers: usize,
    batch: usize,
    how: Write,
    limit: Duration,
) -> Result<(u64, f64)> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let client = pg.connect().await?;
        let (rows, next) = (rows.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            // Prepared by every writer (one round trip per connection), used by the
            // single-row ones.
            let single_row = client
                .prepare(&format!(
                    "INSERT INTO logs ({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17) RETURNING id"
                ))
                .await?;
            let mut done = 0u64;
            while start.elapsed() < limit {
                let from = next.fetch_add(batch as u64, Ordering::Relaxed) as usize;
                let Some(chunk) = rows.get(from..(from + batch).min(rows.len())) else {
                    break;
                };
                if chunk.is_empty() {
                    break;
                }
                match how {
                    Write::SingleRow => {
                        for row in chunk {
                            client
                                .query_one(&single_row, &row_params(row, &widen(row)))
                                .await?;
                        }
                    }
                    Write::MultiRowInsert => multi_row_insert(&client, chunk).await?,
                    Write::Copy => copy_in(&client, copy_chunk(chunk)).await?,
                }
                done += chunk.len() as u64;
            }
            anyhow::Ok(done)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    Ok((total, start.elapsed().as_secs_f64()))
}

/// One `INSERT INTO logs (...) VALUES ($1, ...), ...` of `rows` (17 parameters a row, so at most
/// 3,855 rows within PostgreSQL's 65,535 parameters).
async fn multi_row_insert(client: &Client, rows: &[LogRow]) -> Result<()> {
    use std::fmt::Write as _;
    use tokio_postgres::types::ToSql;
    const PER_ROW: usize = 17;
    let mut sql = format!("INSERT INTO logs ({COLUMNS}) VALUES ");
    for i in 0..rows.len() {
        sql.push_str(if i == 0 { "(" } else { ",(" });
        for j in 0..PER_ROW {
            let _ = write!(
                sql,
                "{}${}",
                if j == 0 { "" } else { "," },
                i * PER_ROW + j + 1
            );
        }
        sql.push(')');
    }
    let widened: Vec<[i64; 3]> = rows.iter().map(widen).collect();
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(rows.len() * PER_ROW);
    for (r, w) in rows.iter().zip(&widened) {
        params.extend_from_slice(&row_params(r, w));
    }
    client.execute(&sql, &params).await?;
    Ok(())
}

/// The row type's narrower integers (`created_at`, `type`, `use_time`), widened to new-api's
/// bigint columns.
fn widen(r: &LogRow) -> [i64; 3] {
    [r.created_at.into(), r.log_type.into(), r.use_time.into()]
}

/// A row's 17 parameters in [`COLUMNS`] order (`w`: [`widen`] of it).
fn row_params<'a>(
    r: &'a LogRow,
    w: &'a [i64; 3],
) -> [&'a (dyn tokio_postgres::types::ToSql + Sync); 17] {
    [
        &r.user_id,
        &w[0],
        &w[1],
        &r.content,
        &r.username,
        &r.token_name,
        &r.model_name,
        &r.quota,
        &r.prompt_tokens,
        &r.completion_tokens,
        &w[2],
        &r.is_stream,
        &r.channel_id,
        &r.token_id,
        &r.group,
        &r.ip,
        &r.other,
    ]
}

fn push_text(buf: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        match b {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            _ => buf.push(b),
        }
    }
}

/// COPY text encoding of rows (ids come from the bigserial, in row order).
pub(crate) fn copy_chunk(rows: &[LogRow]) -> Bytes {
    use std::io::Write;
    let mut buf = Vec::with_capacity(rows.len() * 400);
    for r in rows {
        let _ = write!(buf, "{}\t{}\t{}\t", r.user_id, r.created_at, r.log_type);
        for (i, text) in [&r.content, &r.username, &r.token_name, &r.model_name]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                buf.push(b'\t');
            }
            push_text(&mut buf, text);
        }
        let _ = write!(
            buf,
            "\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.quota,
            r.prompt_tokens,
            r.completion_tokens,
            r.use_time,
            if r.is_stream { "t" } else { "f" },
            r.channel_id,
            r.token_id
        );
        for text in [&r.group, &r.ip, &r.other] {
            buf.push(b'\t');
            push_text(&mut buf, text);
        }
        buf.push(b'\n');
    }
    Bytes::from(buf)
}

pub(crate) async fn copy_in(c: &Client, data: Bytes) -> Result<()> {
    let sink = c
        .copy_in(&format!("COPY logs ({COLUMNS}) FROM STDIN"))
        .await?;
    futures::pin_mut!(sink);
    sink.send(data).await?;
    sink.finish().await?;
    Ok(())
}

pub(crate) async fn table_bytes(c: &Client) -> Result<(i64, i64)> {
    let r = c
        .query_one(
            "SELECT pg_total_relation_size('logs')::bigint, (SELECT count(*) FROM logs)::bigint",
            &[],
        )
        .await?;
    Ok((r.get(0), r.get(1)))
}
