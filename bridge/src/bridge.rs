//! One run of the bridge: identities first (so that the API can authenticate as soon as logs
//! arrive), then `logs` in id order from the checkpoint; `run` then follows both. Every
//! checkpoint written holds only what Kafka acknowledged, so a SIGKILL at any point resumes
//! without a gap, and what is published twice (the batch in flight) carries the same event ids,
//! which ingest drops (docs/ingest.md, event-id filter).

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::FutureExt;

use crate::Error;
use crate::checkpoint::{Checkpoint, CheckpointFile};
use crate::config::BridgeConfig;
use crate::identities::{IdentityTracker, poll};
use crate::logs::{LogPump, PumpSettings};
use crate::mapping::namespace_uuid;
use crate::progress::{Progress, Stats};
use crate::publish::Publisher;
use crate::source::Source;

/// The checkpoint is written at most this often while batches stream (and always at the end
/// and when caught up): what a SIGKILL re-publishes is at most this much, deduplicated.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Runs the bridge until it has backfilled (`follow` false) or until `shutdown` resolves.
/// `terminal`: draw a progress bar (else log lines).
pub async fn run(
    config: &BridgeConfig,
    follow: bool,
    terminal: bool,
    shutdown: impl Future<Output = ()>,
) -> Result<Stats, Error> {
    config.validate()?;
    let namespace = namespace_uuid(&config.namespace);
    let file = CheckpointFile::new(&config.checkpoint);
    let mut checkpoint = file.load(namespace).await?;
    let (main_options, main_name) = config.main_source()?;
    let main = Source::connect(main_options, main_name).await?;
    let logs_source = match &config.log_sql_dsn {
        Some(dsn) if !dsn.is_empty() => {
            let (options, name) = config.log_source()?;
            Source::connect(options, name).await?
        }
        _ => main.clone(),
    };
    tracing::info!(
        main = main.name(),
        logs = logs_source.name(),
        checkpoint = %file.path().display(),
        resume_after_id = checkpoint.logs.high,
        open_gaps = checkpoint.logs.gaps.len(),
        %namespace,
        "bridge starting"
    );
    let publisher = Publisher::new(&config.kafka)?;
    let mut stats = Stats::default();
    let mut tracker = IdentityTracker::new(checkpoint.identity_version);
    let mut channels = main.channel_names().await?;
    poll(
        &mut tracker,
        &main,
        &publisher,
        &config.kafka.identity_topic,
        &mut stats,
    )
    .await?;
    checkpoint.identity_version = tracker.version();
    file.store(&checkpoint).await?;
    let mut identities_polled = Instant::now();

    let target = logs_source.max_log_id().await?;
    let settings = PumpSettings {
        topic: config.kafka.logs_topic.clone(),
        namespace,
        batch_size: config.batch_size,
        late_row_window_secs: config.late_row_window_secs,
        recheck_every: config.poll_interval(),
    };
    let mut pump = LogPump::new(
        logs_source.clone(),
        publisher.clone(),
        settings,
        checkpoint.logs.clone(),
    )
    .await?;
    let mut progress = Progress::new(
        terminal,
        Duration::from_secs(config.progress_interval_secs),
        checkpoint.logs.high,
        target,
    );
    let started = Instant::now();
    let mut stored_at = Instant::now();
    let mut backfilled = false;
    let mut shutdown = std::pin::pin!(shutdown.fuse());
    loop {
        if (&mut shutdown).now_or_never().is_some() {
            break;
        }
        if follow && identities_polled.elapsed() >= config.identity_poll_interval() {
            identities_polled = Instant::now();
            channels = refreshed(&main, channels).await;
            poll(
                &mut tracker,
                &main,
                &publisher,
                &config.kafka.identity_topic,
                &mut stats,
            )
            .await?;
            checkpoint.identity_version = tracker.version();
        }
        let (step, acknowledged) = pump.step(&channels, &mut stats, false).await?;
        if let Some(cursor) = acknowledged {
            checkpoint.logs = cursor;
            if stored_at.elapsed() >= CHECKPOINT_EVERY {
                file.store(&checkpoint).await?;
                stored_at = Instant::now();
            }
        }
        progress.update(pump.read_high(), &stats);
        throttle(config.max_rows_per_sec, stats.log_rows_read, started).await;
        if step.caught_up {
            if !backfilled {
                backfilled = true;
                progress.caught_up();
                if !follow {
                    // One more look into the gaps the backfill leaves behind.
                    let (_, acknowledged) = pump.step(&channels, &mut stats, true).await?;
                    if let Some(cursor) = acknowledged {
                        checkpoint.logs = cursor;
                    }
                }
                tracing::info!(%stats, "backfill done");
            }
            if let Some(cursor) = pump.settle().await? {
                checkpoint.logs = cursor;
            }
            file.store(&checkpoint).await?;
            stored_at = Instant::now();
            if !follow {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(config.poll_interval()) => {}
                () = &mut shutdown => break,
            }
        }
    }
    if let Some(cursor) = pump.settle().await? {
        checkpoint.logs = cursor;
    }
    file.store(&checkpoint).await?;
    main.close().await;
    logs_source.close().await;
    tracing::info!(%stats, high_id = checkpoint.logs.high, "bridge stopped");
    Ok(stats)
}

/// The channel names again; on a read error the old ones stay (they only label events).
async fn refreshed(main: &Source, old: HashMap<i64, String>) -> HashMap<i64, String> {
    match main.channel_names().await {
        Ok(names) => names,
        Err(error) => {
            tracing::warn!(%error, "channel names not refreshed");
            old
        }
    }
}

/// Sleeps so that `rows` read since `started` stay within `max_per_sec` (0: no limit).
async fn throttle(max_per_sec: u64, rows: u64, started: Instant) {
    if max_per_sec == 0 {
        return;
    }
    let due = Duration::from_secs_f64(rows as f64 / max_per_sec as f64);
    if let Some(wait) = due.checked_sub(started.elapsed()) {
        tokio::time::sleep(wait).await;
    }
}

/// The checkpoint as `run` would resume from it (for tests and operators' tooling).
pub async fn stored_checkpoint(config: &BridgeConfig) -> Result<Checkpoint, Error> {
    CheckpointFile::new(&config.checkpoint)
        .load(namespace_uuid(&config.namespace))
        .await
}
