//! Events published at a fixed rate, each stamped with its produce time (`<prefix><ms>` in
//! `request_id`), and how long after it each became queryable: the freshness step and the
//! live tail's window each publish their own such events.

use std::time::{Duration, Instant};

use anyhow::Result;
use clickhouse::Client;
use logbus_projections::rows::LogRow;

use crate::{data, logbus};

/// The freshness step's request-id prefix.
pub(crate) const FRESHNESS: &str = "fresh-";

/// Publishes `total` events at `rate` per second to `topic`, copies of `source`'s rows (round
/// robin) with new event ids, the current time and `<prefix><produce ms>` as request id;
/// returns how many were published (all flushed).
pub(crate) async fn publish(
    brokers: &str,
    topic: &str,
    source: &[LogRow],
    rate: f64,
    total: u64,
    prefix: &'static str,
    seed: u64,
) -> Result<u64> {
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    let source: Vec<LogRow> = source.iter().take(total as usize).cloned().collect();
    if source.is_empty() {
        return Ok(0);
    }
    tokio::task::spawn_blocking(move || {
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
        logbus::publish_paced(
            &brokers,
            &topic,
            rate,
            |n| n >= total,
            |n| {
                let mut row = source[n as usize % source.len()].clone();
                row.event_id = data::new_event_id(&mut rng);
                let ms = (crate::now_unix() * 1000.0) as u64;
                row.created_at = (ms / 1000) as u32;
                row.request_id = format!("{prefix}{ms}");
                row
            },
        )
    })
    .await?
}

/// Waits (up to `limit`) until `logs` holds `rows` rows; returns whether it did.
pub(crate) async fn wait_for_rows(ch: &Client, rows: u64, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    loop {
        if logbus::count(ch, "logs").await.unwrap_or(0) >= rows {
            return true;
        }
        if Instant::now() > until {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// p50 and p99 (ms) of `ingested_at` − produce time over the rows stamped with `prefix`, and
/// their number.
pub(crate) async fn latency(ch: &Client, prefix: &str) -> Result<(f64, f64, u64)> {
    Ok(ch
        .query(
            "SELECT quantileExact(0.5)(d), quantileExact(0.99)(d), count() FROM (SELECT \
             toFloat64(toUnixTimestamp64Milli(ingested_at) \
               - toInt64(substring(request_id, length({prefix:String}) + 1))) AS d \
             FROM logs WHERE startsWith(request_id, {prefix:String}))",
        )
        .param("prefix", prefix)
        .fetch_one::<(f64, f64, u64)>()
        .await?)
}

/// Rows stamped with `prefix` per user.
pub(crate) async fn per_user(
    ch: &Client,
    prefix: &str,
) -> Result<std::collections::HashMap<u32, u64>> {
    Ok(ch
        .query(
            "SELECT toUInt32(user_id), count() FROM logs \
             WHERE startsWith(request_id, {prefix:String}) GROUP BY user_id",
        )
        .param("prefix", prefix)
        .fetch_all::<(u32, u64)>()
        .await?
        .into_iter()
        .collect())
}
