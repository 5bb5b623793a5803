//! Private Apache Kafka brokers (KRaft) from the jars `make install` put in
//! `.devstack/kafka/libs` (`devstack/kafka/pom.xml`): one combined broker+controller
//! ([`Kafka`]) or a 3-node cluster ([`KafkaCluster`]), on free loopback ports and data folders
//! of their own, for tests that kill, restart or fail over brokers without disturbing the
//! shared dev stack. Each node is a [`Process`]: stopped by its pid, killed when dropped.

use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::{Error, Process, Result, io, paths};

/// How long a starting node may take to log that it started (JVM start, log recovery, and in
/// a cluster the controller quorum forming).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stopping node may take after its signal (a clean shutdown moves leadership away).
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// What `kafka.Kafka` logs once the broker serves clients (`KafkaRaftServer.startup`).
const STARTED: &str = "Kafka Server started";

/// The directory of the Kafka jars, checked to hold the broker.
pub fn kafka_libs() -> Result<PathBuf> {
    let libs = paths::devstack_dir().join("kafka/libs");
    let has_broker = std::fs::read_dir(&libs).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("kafka_2.13-"))
    });
    if has_broker {
        Ok(libs)
    } else {
        Err(Error::NotInstalled(libs.join("kafka_2.13-*.jar")))
    }
}

/// `$JAVA_HOME/bin/java`, or `java` from `PATH`.
fn java() -> PathBuf {
    match std::env::var_os("JAVA_HOME") {
        Some(home) if !home.is_empty() => Path::new(&home).join("bin/java"),
        _ => PathBuf::from("java"),
    }
}

/// A free loopback port (bound and released; the node binds it right after).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("bind 127.0.0.1:0"))?;
    Ok(listener
        .local_addr()
        .map_err(io("local address of a bound socket"))?
        .port())
}

/// A random cluster id: 16 random bytes, URL-safe base64 without padding (what
/// `kafka-storage.sh random-uuid` prints). Like Kafka's own `Uuid.randomUuid`, never one that
/// starts with `-`: the storage tool would read it as an option (`--cluster-id: expected one
/// argument`), which failed a broker start about once in 64.
fn random_cluster_id() -> String {
    loop {
        let id = random_base64_id();
        if !id.starts_with('-') {
            return id;
        }
    }
}

fn random_base64_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; 16];
    for half in bytes.chunks_mut(8) {
        // RandomState is seeded from the OS's randomness, each instance anew.
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        half.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut id = String::with_capacity(22);
    for byte in bytes {
        bits = (bits << 8) | u32::from(byte);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            id.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
        }
    }
    if nbits > 0 {
        id.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    id
}

/// Settings of one node.
#[derive(Debug, Clone)]
struct NodeSpec {
    id: u32,
    port: u16,
    controller_port: u16,
    /// `id@127.0.0.1:controller_port` of every voter.
    voters: String,
    /// Replication factor of the internal topics and the default for new topics.
    replication: u32,
    min_insync: u32,
    heap: &'static str,
    dir: PathBuf,
}

impl NodeSpec {
    fn properties(&self) -> String {
        let mut p = String::new();
        let data = self.dir.join("data");
        let _ = write!(
            p,
            "# written by logbus-devstack (devstack/src/kafka.rs)\n\
             process.roles=broker,controller\n\
             node.id={id}\n\
             controller.quorum.voters={voters}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=PLAINTEXT\n\
             listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
             log.dirs={data}\n\
             auto.create.topics.enable=false\n\
             num.partitions=1\n\
             default.replication.factor={rf}\n\
             min.insync.replicas={isr}\n\
             offsets.topic.replication.factor={rf}\n\
             offsets.topic.num.partitions=12\n\
             transaction.state.log.replication.factor={rf}\n\
             transaction.state.log.min.isr={isr}\n\
             share.coordinator.state.topic.replication.factor={rf}\n\
             share.coordinator.state.topic.min.isr={isr}\n\
             group.initial.rebalance.delay.ms=0\n\
             broker.heartbeat.interval.ms=1000\n\
             broker.session.timeout.ms=4000\n\
             num.network.threads=2\n\
             num.io.threads=2\n\
             num.replica.fetchers=1\n\
             num.recovery.threads.per.data.dir=1\n\
             background.threads=2\n",
            id = self.id,
            voters = self.voters,
            port = self.port,
            cport = self.controller_port,
            data = data.display(),
            rf = self.replication,
            isr = self.min_insync,
        );
        p
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("server.properties")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("kafka.log")
    }

    /// Writes the configuration and formats the data folder with `cluster_id`.
    async fn format(&self, cluster_id: &str) -> Result<()> {
        std::fs::create_dir_all(self.dir.join("data"))
            .map_err(io(format!("create {}", self.dir.display())))?;
        std::fs::write(self.config_path(), self.properties())
            .map_err(io(format!("write {}", self.config_path().display())))?;
        let libs = kafka_libs()?;
        let output = tokio::process::Command::new(java())
            .args(["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
            .arg(log4j_option("log4j2-tools.properties"))
            .arg("-cp")
            .arg(libs.join("*"))
            .args(["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c"])
            .arg(self.config_path())
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(io(format!(
                "run kafka.tools.StorageTool format ({})",
                java().display()
            )))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(Error::Io {
                what: format!("format {} (kafka.tools.StorageTool)", self.dir.display()),
                source: std::io::Error::other(format!(
                    "{}: {}{}",
                    output.status,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )),
            })
        }
    }

    /// Starts the JVM; [`Node::wait_started`] waits for it to serve.
    fn spawn(&self) -> Result<(Process, u64)> {
        let log = self.log_path();
        let from = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let mut command = Command::new(java());
        command
            .args(["-Xms64m", &format!("-Xmx{}", self.heap)])
            .args([
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                "-XX:+ExitOnOutOfMemoryError",
            ])
            .arg("-Djava.awt.headless=true")
            .arg(log4j_option("log4j2.properties"))
            .arg("-cp")
            .arg(kafka_libs()?.join("*"))
            .arg("kafka.Kafka")
            .arg(self.config_path());
        let process = Process::spawn(&format!("kafka node {}", self.id), &mut command, &log)?;
        Ok((process, from))
    }
}

fn log4j_option(file: &str) -> String {
    format!(
        "-Dlog4j2.configurationFile={}",
        paths::repo_root()
            .join("devstack/kafka")
            .join(file)
            .display()
    )
}

/// One running (or stopped) node.
#[derive(Debug)]
struct Node {
    spec: NodeSpec,
    process: Option<Process>,
    /// Where in the log this run's output starts.
    log_from: u64,
}

impl Node {
    fn start(&mut self) -> Result<()> {
        assert!(
            self.process.is_none(),
            "kafka node {} is already running",
            self.spec.id
        );
        let (process, from) = self.spec.spawn()?;
        self.process = Some(process);
        self.log_from = from;
        Ok(())
    }

    async fn wait_started(&mut self) -> Result<()> {
        let log = self.spec.log_path();
        let from = self.log_from;
        let what = format!(
            "kafka node {} on 127.0.0.1:{} to log \"{STARTED}\"",
            self.spec.id, self.spec.port
        );
        let process = self.process.as_mut().expect("kafka node started");
        process
            .wait_ready(&what, START_TIMEOUT, || {
                let started = std::fs::read(&log).is_ok_and(|text| {
                    let from = usize::try_from(from).unwrap_or(usize::MAX).min(text.len());
                    String::from_utf8_lossy(&text[from..]).contains(STARTED)
                });
                async move { started }
            })
            .await
    }

    async fn stop(&mut self, signal: Signal) -> Result<ExitStatus> {
        let mut process = self
            .process
            .take()
            .unwrap_or_else(|| panic!("kafka node {} is not running", self.spec.id));
        process.signal(signal)?;
        // If it does not exit in time, dropping `process` SIGKILLs it.
        process.wait_exit(STOP_TIMEOUT).await
    }

    fn broker(&self) -> String {
        format!("127.0.0.1:{}", self.spec.port)
    }
}

/// Creates and formats `count` nodes under `dir` (`dir/node-<id>`), all controller voters.
async fn nodes(
    dir: &Path,
    count: u32,
    replication: u32,
    min_insync: u32,
    heap: &'static str,
) -> Result<Vec<Node>> {
    let mut ports = Vec::new();
    for _ in 0..count {
        ports.push((free_port()?, free_port()?));
    }
    let voters = (1..=count)
        .zip(&ports)
        .map(|(id, (_, cport))| format!("{id}@127.0.0.1:{cport}"))
        .collect::<Vec<_>>()
        .join(",");
    let cluster_id = random_cluster_id();
    let mut nodes = Vec::new();
    for (id, (port, controller_port)) in (1..=count).zip(ports) {
        let spec = NodeSpec {
            id,
            port,
            controller_port,
            voters: voters.clone(),
            replication,
            min_insync,
            heap,
            dir: dir.join(format!("node-{id}")),
        };
        spec.format(&cluster_id).await?;
        nodes.push(Node {
            spec,
            process: None,
            log_from: 0,
        });
    }
    Ok(nodes)
}

/// A private single Apache Kafka node (broker and controller in one process) on free loopback
/// ports, its data, configuration and log under a folder of its own. Internal topics have
/// replication factor 1, the initial rebalance delay is 0, topics are not auto-created.
#[derive(Debug)]
pub struct Kafka {
    node: Node,
}

impl Kafka {
    /// Formats `dir` and starts the node; returns once it serves clients.
    pub async fn start(dir: PathBuf) -> Result<Self> {
        let mut nodes = nodes(&dir, 1, 1, 1, "512m").await?;
        let mut kafka = Self {
            node: nodes.remove(0),
        };
        kafka.restart().await?;
        Ok(kafka)
    }

    /// `127.0.0.1:<port>`, for `bootstrap.servers`.
    pub fn brokers(&self) -> String {
        self.node.broker()
    }

    pub fn pid(&self) -> Option<u32> {
        self.node.process.as_ref().map(Process::pid)
    }

    /// The folder with `data/`, `server.properties` and `kafka.log`.
    pub fn dir(&self) -> &Path {
        &self.node.spec.dir
    }

    /// Starts the node again on the same ports and data (after [`Self::stop`] or
    /// [`Self::kill`]); returns once it serves clients.
    pub async fn restart(&mut self) -> Result<()> {
        self.node.start()?;
        self.node.wait_started().await
    }

    /// Stops the node with `signal` (SIGTERM: clean shutdown) and waits until it is gone.
    pub async fn stop(&mut self, signal: Signal) -> Result<ExitStatus> {
        self.node.stop(signal).await
    }

    /// SIGKILLs the node (a crash) and waits until it is gone.
    pub async fn kill(&mut self) -> Result<ExitStatus> {
        self.stop(Signal::SIGKILL).await
    }

    /// The running process, e.g. to SIGSTOP it or read its usage in /proc.
    pub fn process(&mut self) -> Option<&mut Process> {
        self.node.process.as_mut()
    }
}

/// A private 3-node Apache Kafka cluster (KRaft; every node broker and controller voter) on
/// free loopback ports, each node's data, configuration and log in `dir/node-<id>`.
/// `min.insync.replicas=2`; new topics and the internal topics get replication factor 3.
/// Nodes are numbered 1 to 3 (their `node.id`, as the broker ids in metadata).
#[derive(Debug)]
pub struct KafkaCluster {
    nodes: Vec<Node>,
}

impl KafkaCluster {
    pub const NODES: u32 = 3;

    /// Formats the three nodes and starts them; returns once each serves clients.
    pub async fn start(dir: PathBuf) -> Result<Self> {
        let nodes = nodes(&dir, Self::NODES, 3, 2, "384m").await?;
        let mut cluster = Self { nodes };
        // All at once: a node's broker starts only once the controller quorum has a majority.
        for node in &mut cluster.nodes {
            node.start()?;
        }
        for node in &mut cluster.nodes {
            node.wait_started().await?;
        }
        Ok(cluster)
    }

    /// Every node's `127.0.0.1:<port>`, comma-separated, for `bootstrap.servers`.
    pub fn brokers(&self) -> String {
        self.nodes
            .iter()
            .map(Node::broker)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `id`'s `127.0.0.1:<port>`.
    pub fn broker(&self, id: u32) -> String {
        self.node(id).broker()
    }

    /// The node id whose broker listens on `port`, e.g. to map a partition leader's address.
    pub fn node_of_port(&self, port: u16) -> Option<u32> {
        self.nodes
            .iter()
            .find(|n| n.spec.port == port)
            .map(|n| n.spec.id)
    }

    pub fn pid(&self, id: u32) -> Option<u32> {
        self.node(id).process.as_ref().map(Process::pid)
    }

    pub fn is_running(&self, id: u32) -> bool {
        self.node(id).process.is_some()
    }

    /// SIGKILLs node `id` (a crash) and waits until it is gone.
    pub async fn kill(&mut self, id: u32) -> Result<ExitStatus> {
        self.node_mut(id).stop(Signal::SIGKILL).await
    }

    /// Stops node `id` with `signal` (SIGTERM: controlled shutdown) and waits until it is gone.
    pub async fn stop(&mut self, id: u32, signal: Signal) -> Result<ExitStatus> {
        self.node_mut(id).stop(signal).await
    }

    /// Starts node `id` again on its ports and data; returns once it serves clients.
    pub async fn restart(&mut self, id: u32) -> Result<()> {
        let node = self.node_mut(id);
        node.start()?;
        node.wait_started().await
    }

    /// Stops every running node: SIGTERM to all at once (one by one, the last node would wait
    /// for a controller quorum that is gone), then waits; SIGKILL after the grace period.
    pub async fn shutdown(&mut self) -> Result<()> {
        let mut running: Vec<Process> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.process.take())
            .collect();
        for process in &running {
            process.signal(Signal::SIGTERM)?;
        }
        for process in &mut running {
            if process.wait_exit(STOP_TIMEOUT).await.is_err() {
                process.signal(Signal::SIGKILL)?;
                process.wait_exit(Duration::from_secs(10)).await?;
            }
        }
        Ok(())
    }

    fn node(&self, id: u32) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.spec.id == id)
            .unwrap_or_else(|| panic!("no kafka node {id} (nodes are 1..={})", Self::NODES))
    }

    fn node_mut(&mut self, id: u32) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.spec.id == id)
            .unwrap_or_else(|| panic!("no kafka node {id} (nodes are 1..={})", Self::NODES))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_are_22_url_safe_base64_characters_and_differ() {
        let a = random_cluster_id();
        let b = random_cluster_id();
        assert_eq!(a.len(), 22, "{a}");
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "{a}"
        );
        assert_ne!(a, b);
    }

    #[test]
    fn cluster_ids_never_look_like_an_option() {
        // About 1 in 64 raw ids starts with '-': 2,000 draws make a regression all but certain.
        for _ in 0..2_000 {
            let id = random_cluster_id();
            assert!(!id.starts_with('-'), "{id}");
        }
    }
}
