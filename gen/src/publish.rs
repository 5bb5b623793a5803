//! Publishing to Kafka: identity events first, then log events at a rate (with bursts), as
//! `logbus-gen` does.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use logbus_runtime::KafkaArgs;
use rdkafka::ClientConfig;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::generator::Generator;
use crate::identity::identity_key;

/// What can stop a publish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("the producer dropped a delivery")]
    DeliveryLost,
}

/// Flags of `logbus-gen`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "logbus-gen",
    version,
    about = "Publishes realistic gateway events"
)]
pub struct GenConfig {
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Log events per second (0: as fast as possible).
    #[arg(long, env = "LOGBUS_GEN_RATE", default_value_t = 1000.0)]
    pub rate: f64,
    /// Log events to publish (0: forever).
    #[arg(long, env = "LOGBUS_GEN_COUNT", default_value_t = 0)]
    pub count: u64,
    /// Seed of every generated value (users, tokens, credentials, events). Default: a random
    /// one, drawn at start and printed, so that the demo's credentials are not known in
    /// advance; pass the printed seed to publish the same users and credentials again.
    #[arg(long, env = "LOGBUS_GEN_SEED")]
    pub seed: Option<u64>,
    /// Number of gateway users (user 1 is root).
    #[arg(long, env = "LOGBUS_GEN_USERS", default_value_t = 200)]
    pub users: usize,
    /// Do not publish identity events.
    #[arg(long, env = "LOGBUS_GEN_NO_IDENTITY")]
    pub no_identity: bool,
}

/// What `publish` sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenReport {
    pub log_events: u64,
    pub identity_events: u64,
    /// Sum of quota of the published log events.
    pub quota: i64,
}

/// A seed from the operating system's random source: the demo credentials derive from it.
pub fn random_seed() -> u64 {
    rand::random()
}

impl GenConfig {
    /// Draws the random seed if none was given, once, so that what is printed and what is
    /// published agree; returns the seed.
    pub fn resolve_seed(&mut self) -> u64 {
        *self.seed.get_or_insert_with(random_seed)
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn settle(in_flight: &mut VecDeque<DeliveryFuture>, keep: usize) -> Result<(), Error> {
    while in_flight.len() > keep {
        if let Some(delivery) = in_flight.pop_front() {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(Error::Kafka(e)),
                Err(_) => return Err(Error::DeliveryLost),
            }
        }
    }
    Ok(())
}

async fn send(
    producer: &FutureProducer,
    in_flight: &mut VecDeque<DeliveryFuture>,
    topic: &str,
    key: &str,
    payload: &[u8],
) -> Result<(), Error> {
    loop {
        match producer.send_result(FutureRecord::to(topic).key(key).payload(payload)) {
            Ok(delivery) => {
                in_flight.push_back(delivery);
                return settle(in_flight, 20_000).await;
            }
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                _,
            )) => {
                settle(in_flight, in_flight.len() / 2).await?;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => return Err(Error::Kafka(e)),
        }
    }
}

/// Publishes identity events (unless disabled) and then `count` log events at `rate`.
/// `progress` shows a progress bar on stderr (drawn only on a terminal).
pub async fn publish(config: &GenConfig, progress: bool) -> Result<GenReport, Error> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("linger.ms", "10")
        .set("message.timeout.ms", "60000")
        .set("queue.buffering.max.messages", "200000")
        .create()?;
    let seed = config.seed.unwrap_or_else(random_seed);
    let mut generator = Generator::new(seed, config.users);
    let mut report = GenReport::default();
    let mut in_flight = VecDeque::new();
    if !config.no_identity {
        for event in generator.identity_events() {
            let key = identity_key(&event);
            let payload = serde_json::to_vec(&event).expect("identity events serialize");
            send(
                &producer,
                &mut in_flight,
                &config.kafka.identity_topic,
                &key,
                &payload,
            )
            .await?;
            report.identity_events += 1;
        }
    }
    let bar = if progress {
        let bar = if config.count > 0 {
            ProgressBar::new(config.count)
        } else {
            ProgressBar::no_length()
        };
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut sent: u64 = 0;
    while config.count == 0 || sent < config.count {
        if config.rate > 0.0 {
            // Bursts: see burst_extra.
            let elapsed = started.elapsed().as_secs_f64();
            let due = ((elapsed + burst_extra(elapsed)) * config.rate) as u64;
            if sent >= due {
                tokio::time::sleep(Duration::from_millis(2)).await;
                continue;
            }
        }
        let event = generator.next_event(now_secs());
        let key = event.user_id.to_string();
        report.quota += event.quota.unwrap_or_default();
        let payload = serde_json::to_vec(&event).expect("log events serialize");
        send(
            &producer,
            &mut in_flight,
            &config.kafka.logs_topic,
            &key,
            &payload,
        )
        .await?;
        sent += 1;
        report.log_events += 1;
        if sent.is_multiple_of(256) {
            bar.set_position(sent);
        }
    }
    settle(&mut in_flight, 0).await?;
    bar.set_position(sent);
    bar.finish();
    Ok(report)
}

/// Extra "seconds of events" published by time `t` due to bursts: during the first 2 s of
/// each 10 s cycle events come 3x as fast, the remaining 8 s at 0.5x (average 1x).
fn burst_extra(t: f64) -> f64 {
    let cycles = (t / 10.0).floor();
    let phase = t - cycles * 10.0;
    if phase < 2.0 {
        2.0 * phase
    } else {
        4.0 - 0.5 * (phase - 2.0)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::identity::admin_access_token;

    #[test]
    fn the_seed_is_random_unless_given() {
        let parse = |args: &[&str]| GenConfig::try_parse_from(args).expect("parses");
        if std::env::var_os("LOGBUS_GEN_SEED").is_none() {
            let (mut a, mut b) = (parse(&["logbus-gen"]), parse(&["logbus-gen"]));
            let seed = a.resolve_seed();
            assert_eq!(a.resolve_seed(), seed, "drawn once");
            assert_ne!(b.resolve_seed(), seed);
            assert_ne!(
                admin_access_token(seed),
                admin_access_token(b.resolve_seed())
            );
        }
        assert_eq!(parse(&["logbus-gen", "--seed", "42"]).resolve_seed(), 42);
    }
}
