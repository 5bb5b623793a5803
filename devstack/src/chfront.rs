use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::{Process, Result, io, paths};

/// How long a starting front may take to answer `/ping` (chDB loads its engine first).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A private ClickHouse front (`devstack/chfront/chfront.py` over chDB) on a loopback port and
/// data folder of its own, for tests and benchmarks that stop, kill or load it without
/// disturbing the shared dev stack. Dropping it kills the process.
#[derive(Debug)]
pub struct ChFront {
    port: u16,
    data: PathBuf,
    log: PathBuf,
    process: Option<Process>,
}

impl ChFront {
    /// Starts a front on `127.0.0.1:port` with its data in `data` and its output in `log`;
    /// returns once `/ping` answers `Ok.`.
    pub async fn start(port: u16, data: PathBuf, log: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&data).map_err(io(format!("create {}", data.display())))?;
        let mut front = Self {
            port,
            data,
            log,
            process: None,
        };
        front.restart().await?;
        Ok(front)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    /// Starts the front again on the same port and data (after [`Self::stop`]).
    pub async fn restart(&mut self) -> Result<()> {
        assert!(self.process.is_none(), "chfront is already running");
        let mut command = Command::new(paths::python()?);
        command
            .arg(paths::repo_root().join("devstack/chfront/chfront.py"))
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--data")
            .arg(&self.data);
        let mut process = Process::spawn("chfront", &mut command, &self.log)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| crate::Error::Io {
                what: "build an HTTP client".into(),
                source: std::io::Error::other(e),
            })?;
        let ping = format!("{}/ping", self.url());
        process
            .wait_ready(
                &format!("chfront on port {} to answer /ping", self.port),
                START_TIMEOUT,
                || {
                    let request = http.get(&ping).send();
                    async move {
                        match request.await {
                            Ok(response) => {
                                response.text().await.is_ok_and(|body| body.trim() == "Ok.")
                            }
                            Err(_) => false,
                        }
                    }
                },
            )
            .await?;
        self.process = Some(process);
        Ok(())
    }

    /// Stops the front with `signal` (SIGTERM for a clean stop, SIGKILL for a crash) and waits
    /// until the process is gone.
    pub async fn stop(&mut self, signal: Signal) -> Result<ExitStatus> {
        let mut process = self.process.take().expect("chfront is running");
        process.signal(signal)?;
        process.wait_exit(Duration::from_secs(30)).await
    }

    /// The running process, e.g. to read its usage in /proc.
    pub fn process(&mut self) -> Option<&mut Process> {
        self.process.as_mut()
    }
}
