//! What the bridge did ([`Stats`], the end-of-run summary) and how it shows progress: a bar
//! with rows/s and ETA on a terminal, a log line every few seconds otherwise.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// Counts of one run, by table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub log_rows_read: u64,
    pub log_rows_published: u64,
    /// Rows found in a gap below the newest id (committed late), included in the above.
    pub late_log_rows: u64,
    /// Rows larger than the producer's `message.max.bytes`: logged with their id, not sent.
    pub log_rows_too_large: u64,
    /// Ids missing for longer than the late-row window (deleted or rolled back).
    pub log_ids_given_up: u64,
    pub users_read: u64,
    pub users_published: u64,
    pub tokens_read: u64,
    pub tokens_published: u64,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "logs: {} rows read, {} published ({} committed late), {} too large for Kafka, \
             {} missing ids given up; users: {} read, {} published; tokens: {} read, {} published",
            self.log_rows_read,
            self.log_rows_published,
            self.late_log_rows,
            self.log_rows_too_large,
            self.log_ids_given_up,
            self.users_read,
            self.users_published,
            self.tokens_read,
            self.tokens_published
        )
    }
}

/// Rows per second and the time left, from ids covered so far (`done` of `done + remaining`
/// ids in `elapsed`); `None` before anything moved.
pub fn rate_and_eta(done: u64, remaining: u64, elapsed: Duration) -> Option<(f64, Duration)> {
    let secs = elapsed.as_secs_f64();
    if done == 0 || secs <= 0.0 {
        return None;
    }
    let rate = done as f64 / secs;
    Some((rate, Duration::from_secs_f64(remaining as f64 / rate)))
}

/// The progress display of the log backfill, over ids `start..=target`.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
    interval: Duration,
    start_id: i64,
    target_id: i64,
}

impl Progress {
    pub fn new(terminal: bool, interval: Duration, start_id: i64, target_id: i64) -> Self {
        let bar = terminal.then(|| {
            let bar = ProgressBar::new(target_id.saturating_sub(start_id).max(0) as u64);
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {elapsed_precise} [{bar:40}] ids {pos}/{len} ({per_sec}, eta {eta}) {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        let now = Instant::now();
        Self {
            bar,
            started: now,
            last_line: now,
            interval,
            start_id,
            target_id,
        }
    }

    /// Shows that ids up to `high` are read and `stats` so far.
    pub fn update(&mut self, high: i64, stats: &Stats) {
        let done = high.saturating_sub(self.start_id).max(0) as u64;
        let remaining = self.target_id.saturating_sub(high).max(0) as u64;
        if let Some(bar) = &self.bar {
            bar.set_position(done.min(bar.length().unwrap_or(u64::MAX)));
            bar.set_message(format!("{} rows published", stats.log_rows_published));
            return;
        }
        if self.last_line.elapsed() < self.interval {
            return;
        }
        self.last_line = Instant::now();
        match rate_and_eta(done, remaining, self.started.elapsed()) {
            Some((rate, eta)) if remaining > 0 => tracing::info!(
                high_id = high,
                target_id = self.target_id,
                published = stats.log_rows_published,
                "backfill: {:.0} ids/s, eta {}s",
                rate,
                eta.as_secs()
            ),
            _ => tracing::info!(
                high_id = high,
                published = stats.log_rows_published,
                late = stats.late_log_rows,
                "following new-api's logs"
            ),
        }
    }

    /// The backfill reached its target: the bar ends, following goes on with log lines.
    pub fn caught_up(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_and_eta_follow_the_ids_covered() {
        assert_eq!(rate_and_eta(0, 10, Duration::from_secs(1)), None);
        let (rate, eta) = rate_and_eta(1000, 3000, Duration::from_secs(2)).expect("moving");
        assert_eq!(rate, 500.0);
        assert_eq!(eta, Duration::from_secs(6));
    }

    #[test]
    fn the_summary_names_every_table() {
        let stats = Stats {
            log_rows_read: 3,
            log_rows_published: 2,
            log_rows_too_large: 1,
            users_read: 4,
            tokens_published: 5,
            ..Stats::default()
        };
        let text = stats.to_string();
        for part in [
            "3 rows read",
            "2 published",
            "1 too large",
            "users: 4 read",
            "tokens: 0 read, 5 published",
        ] {
            assert!(text.contains(part), "{part}: {text}");
        }
    }
}
