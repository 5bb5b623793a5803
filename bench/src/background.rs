//! Ingest running beside a measurement: a `logbus-ingest` child on topics of its own, fed by a
//! producer thread that publishes events of the data set's mix, stamped with the current time,
//! at a fixed rate into the measured database (the load and the queries under ingest).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use logbus_devstack::Process;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::data::{self, Generator, Shape};
use crate::logbus;

/// Where the background worker runs and what it writes.
pub(crate) struct Target<'a> {
    pub brokers: &'a str,
    pub partitions: i32,
    pub clickhouse_url: &'a str,
    pub db: &'a str,
    /// The worker's /healthz, /readyz and /metrics address (each measurement its own).
    pub http_addr: &'a str,
    /// Names its topics, group and log file.
    pub name: &'a str,
    /// Seeds the published rows (each measurement its own, so its events are new).
    pub seed: u64,
}

impl<'a> Target<'a> {
    /// The run's broker and ClickHouse (`cfg`), database `db`.
    pub(crate) fn of(
        cfg: &'a crate::Config,
        db: &'a str,
        name: &'a str,
        http_addr: &'a str,
        seed: u64,
    ) -> Self {
        Target {
            brokers: &cfg.brokers,
            partitions: cfg.partitions,
            clickhouse_url: cfg.clickhouse_url.as_deref().unwrap_or_default(),
            db,
            http_addr,
            name,
            seed,
        }
    }
}

/// A running worker and its producer.
pub(crate) struct BackgroundIngest {
    worker: Process,
    producer: Option<std::thread::JoinHandle<Result<u64>>>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    brokers: String,
    topics: [String; 3],
    rows_before: u64,
}

/// What the producer published and the worker wrote.
#[derive(Debug, Default, Clone)]
pub(crate) struct Finished {
    pub published: u64,
    /// The producer's stop → every event published counted in ClickHouse, if within the limit.
    pub caught_up_secs: Option<f64>,
}

impl BackgroundIngest {
    /// Creates the topics, starts the worker, waits for its `/readyz` and starts publishing
    /// `rate` events/s of `shape`'s mix (seeded with `target.seed`).
    pub(crate) async fn start(
        target: &Target<'_>,
        shape: &Shape,
        rate: f64,
        ch: &clickhouse::Client,
        work_dir: &Path,
    ) -> Result<Self> {
        let run_id = format!("{}.{}", target.name, crate::now_unix() as u64);
        let topics = [
            format!("bench.{run_id}.logs"),
            format!("bench.{run_id}.identity"),
            format!("bench.{run_id}.dlq"),
        ];
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        logbus::create_topics(target.brokers, &topic_refs, target.partitions).await?;
        let log = work_dir.join(format!("{}-ingest.log", target.name));
        let [logs_topic, identity_topic, dlq_topic] = &topics;
        let mut worker = logbus::spawn_service(
            &logbus::release_bin("logbus-ingest"),
            &[
                ("LOGBUS_KAFKA_BROKERS", target.brokers.to_owned()),
                ("LOGBUS_GROUP_ID", format!("bench-{run_id}")),
                ("LOGBUS_LOGS_TOPIC", logs_topic.clone()),
                ("LOGBUS_IDENTITY_TOPIC", identity_topic.clone()),
                ("LOGBUS_DLQ_TOPIC", dlq_topic.clone()),
                ("LOGBUS_CLICKHOUSE_URL", target.clickhouse_url.to_owned()),
                ("LOGBUS_CLICKHOUSE_DATABASE", target.db.to_owned()),
                ("LOGBUS_HTTP_ADDR", target.http_addr.to_owned()),
            ],
            &log,
        )?;
        let probe = reqwest::Client::new();
        let readyz = format!("http://{}/readyz", target.http_addr);
        worker
            .wait_ready("logbus-ingest /readyz", Duration::from_secs(60), || {
                let (probe, readyz) = (probe.clone(), readyz.clone());
                async move {
                    probe
                        .get(readyz)
                        .send()
                        .await
                        .is_ok_and(|a| a.status().is_success())
                }
            })
            .await
            .with_context(|| format!("the {} ingest worker: see {}", target.name, log.display()))?;
        let rows_before = logbus::count(ch, "logs").await?;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let producer = {
            let (brokers, topic) = (target.brokers.to_owned(), logs_topic.clone());
            let (stop, sent) = (stop.clone(), sent.clone());
            let shape = Shape {
                seed: target.seed,
                ..shape.clone()
            };
            std::thread::spawn(move || publish(&brokers, &topic, shape, rate, &stop, &sent))
        };
        Ok(Self {
            worker,
            producer: Some(producer),
            stop,
            sent,
            brokers: target.brokers.to_owned(),
            topics,
            rows_before,
        })
    }

    /// An error if the worker has exited.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        Ok(self.worker.check_running()?)
    }

    /// Events handed to the producer so far.
    pub(crate) fn published(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Rows the database gained since the start.
    pub(crate) async fn ingested(&self, ch: &clickhouse::Client) -> Result<u64> {
        Ok(logbus::count(ch, "logs")
            .await?
            .saturating_sub(self.rows_before))
    }

    /// Stops publishing, waits up to `catch_up` for every published event to be counted, stops
    /// the worker and deletes the topics.
    pub(crate) async fn finish(
        mut self,
        ch: &clickhouse::Client,
        catch_up: Duration,
    ) -> Result<Finished> {
        let result = self.finish_inner(ch, catch_up).await;
        let topic_refs: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        if let Err(e) = logbus::delete_topics(&self.brokers, &topic_refs).await {
            eprintln!("bench: deleting the background ingest's topics: {e:#}");
        }
        result
    }

    async fn finish_inner(
        &mut self,
        ch: &clickhouse::Client,
        catch_up: Duration,
    ) -> Result<Finished> {
        self.stop.store(true, Ordering::Relaxed);
        let published = match self.producer.take() {
            Some(p) => p
                .join()
                .map_err(|_| anyhow::anyhow!("the background producer panicked"))??,
            None => self.published(),
        };
        let stopped = Instant::now();
        let mut finished = Finished {
            published,
            caught_up_secs: None,
        };
        while stopped.elapsed() < catch_up {
            if self.ingested(ch).await? >= published {
                finished.caught_up_secs = Some(stopped.elapsed().as_secs_f64());
                break;
            }
            self.worker.check_running()?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.worker.stop(Duration::from_secs(25)).await?;
        Ok(finished)
    }
}

impl Drop for BackgroundIngest {
    /// The producer stops with the measurement, by an error too.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Publishes events of `shape`'s mix stamped with the current time at `rate` per second until
/// `stop`, counting them in `sent`; returns how many were published (all flushed).
fn publish(
    brokers: &str,
    topic: &str,
    shape: Shape,
    rate: f64,
    stop: &AtomicBool,
    sent: &AtomicU64,
) -> Result<u64> {
    let mut generator = Generator::with_shape(shape);
    let mut rng = StdRng::seed_from_u64(0x10ad);
    logbus::publish_paced(
        brokers,
        topic,
        rate,
        |n| {
            sent.store(n, Ordering::Relaxed);
            stop.load(Ordering::Relaxed)
        },
        |_| {
            let mut row = generator.row(crate::now_unix() as u32);
            // Ids of their own: the worker drops an event whose id it has already stored.
            row.event_id = data::new_event_id(&mut rng);
            row
        },
    )
}
