//! Private SQL servers from Debian's packages (`devstack/system-packages.sh` installs
//! `postgresql` and `mariadb-server`): a fresh PostgreSQL cluster ([`Postgres`]) or MariaDB
//! data directory ([`MariaDb`]) in a folder of the caller's, served on a loopback port with
//! authentication off, as a [`Process`] of this crate (stopped by its pid, killed when
//! dropped). For tests and benchmarks that need new-api's database engines.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::{Error, Process, Result, io};

/// How long a server may take to log that it accepts connections.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server may take to stop after SIGTERM/SIGINT.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Runs `command` to completion, its output into the error when it fails.
fn run(what: &str, command: &mut Command) -> Result<()> {
    let output = command.output().map_err(io(format!("run {what}")))?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::Io {
        what: format!("{what} ({command:?})"),
        source: std::io::Error::other(format!(
            "{}\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )),
    })
}

/// Waits until `log` holds `marker`, failing early if the process exits.
async fn wait_logged(process: &mut Process, what: &str, log: &Path, marker: &str) -> Result<()> {
    let log = log.to_owned();
    let marker = marker.to_owned();
    process
        .wait_ready(what, START_TIMEOUT, move || {
            let found = std::fs::read_to_string(&log).is_ok_and(|text| text.contains(&marker));
            std::future::ready(found)
        })
        .await
}

/// PostgreSQL from `/usr/lib/postgresql/<newest>/bin`, `trust` authentication, user
/// `postgres`. As root it runs as the `postgres` user (`setpriv`, which execs, so the pid is
/// the server's).
#[derive(Debug)]
pub struct Postgres {
    port: u16,
    process: Option<Process>,
}

fn postgres_bin() -> Result<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut found: Vec<PathBuf> = std::fs::read_dir(root)
        .map_err(|_| Error::NotInstalled(root.join("*/bin/postgres")))?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    found.sort();
    found
        .pop()
        .ok_or_else(|| Error::NotInstalled(root.join("*/bin/postgres")))
}

/// `tool` of PostgreSQL, as the `postgres` user when this process is root (PostgreSQL refuses
/// to run as root).
fn postgres_command(bin: &Path, tool: &str) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(bin.join(tool));
        command
    } else {
        Command::new(bin.join(tool))
    }
}

impl Postgres {
    /// A new cluster in `dir` (created; must be empty or absent), served on `127.0.0.1:port`.
    pub async fn start(dir: &Path, port: u16) -> Result<Self> {
        let bin = postgres_bin()?;
        let data = dir.join("pgdata");
        std::fs::create_dir_all(&data).map_err(io(format!("create {}", data.display())))?;
        if is_root() {
            run(
                "chown the PostgreSQL data folder",
                Command::new("chown").arg("-R").arg("postgres:").arg(dir),
            )?;
        }
        run(
            "initdb",
            postgres_command(&bin, "initdb")
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
                .arg(&data),
        )?;
        let log = dir.join("postgres.log");
        let mut command = postgres_command(&bin, "postgres");
        command
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&data)
            // A test database: durability off, small memory.
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(["-c", "shared_buffers=128MB", "-c", "max_connections=40"]);
        let mut process = Process::spawn("postgres", &mut command, &log)?;
        wait_logged(
            &mut process,
            &format!("PostgreSQL on port {port}"),
            &log,
            "database system is ready to accept connections",
        )
        .await?;
        Ok(Self {
            port,
            process: Some(process),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Fast shutdown (SIGINT), waiting until the server is gone.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut process) = self.process.take() {
            process.signal(Signal::SIGINT)?;
            process.wait_exit(STOP_TIMEOUT).await?;
        }
        Ok(())
    }
}

/// MariaDB (`mariadbd`), grant tables skipped: any user connects without a password.
#[derive(Debug)]
pub struct MariaDb {
    port: u16,
    process: Option<Process>,
}

impl MariaDb {
    /// A new data directory in `dir`, served on `127.0.0.1:port`.
    pub async fn start(dir: &Path, port: u16) -> Result<Self> {
        let data = dir.join("mariadb");
        std::fs::create_dir_all(&data).map_err(io(format!("create {}", data.display())))?;
        let user = if is_root() { "root" } else { "" };
        let mut install = Command::new("mariadb-install-db");
        install
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--skip-test-db", "--auth-root-authentication-method=normal"]);
        if !user.is_empty() {
            install.arg(format!("--user={user}"));
        }
        run("mariadb-install-db", &mut install).map_err(|e| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                Error::NotInstalled(PathBuf::from("/usr/bin/mariadb-install-db"))
            }
            other => other,
        })?;
        let log = dir.join("mariadb.log");
        let mut command = Command::new("mariadbd");
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", data.join("mariadb.sock").display()))
            .arg(format!("--pid-file={}", data.join("mariadb.pid").display()))
            .arg(format!("--port={port}"))
            .args(["--bind-address=127.0.0.1", "--skip-grant-tables"])
            .args(["--skip-log-bin", "--innodb-buffer-pool-size=128M"])
            // A test database: durability off.
            .args(["--innodb-flush-log-at-trx-commit=0", "--sync-binlog=0"])
            .args([
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_unicode_ci",
            ]);
        if !user.is_empty() {
            command.arg(format!("--user={user}"));
        }
        let mut process = Process::spawn("mariadbd", &mut command, &log)?;
        wait_logged(
            &mut process,
            &format!("MariaDB on port {port}"),
            &log,
            "ready for connections",
        )
        .await?;
        Ok(Self {
            port,
            process: Some(process),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// new-api's MySQL DSN form: `root@tcp(127.0.0.1:<port>)/<database>`.
    pub fn dsn(&self, database: &str) -> String {
        format!("root@tcp(127.0.0.1:{})/{database}", self.port)
    }

    /// SIGTERM, waiting until the server is gone.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut process) = self.process.take() {
            process.signal(Signal::SIGTERM)?;
            process.wait_exit(STOP_TIMEOUT).await?;
        }
        Ok(())
    }
}
