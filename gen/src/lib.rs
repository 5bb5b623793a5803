//! `logbus-gen`: publishes realistic gateway events (usage logs and identity events) to Kafka,
//! deterministic from a seed so that demos and tests can print and use real credentials.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use logbus_projections::events::LogEvent;
use logbus_projections::identity::{IdentityEvent, Secret, TokenIdentity, UserIdentity};
use logbus_projections::rows::identity_codes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::ClientConfig;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::Error;

/// Flags of `logbus-gen`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "logbus-gen",
    version,
    about = "Publishes realistic gateway events"
)]
pub struct GenConfig {
    #[command(flatten)]
    pub kafka: crate::KafkaArgs,
    /// Log events per second (0: as fast as possible).
    #[arg(long, env = "LOGBUS_GEN_RATE", default_value_t = 1000.0)]
    pub rate: f64,
    /// Log events to publish (0: forever).
    #[arg(long, env = "LOGBUS_GEN_COUNT", default_value_t = 0)]
    pub count: u64,
    /// Seed of every generated value (users, tokens, credentials, events).
    #[arg(long, env = "LOGBUS_GEN_SEED", default_value_t = 42)]
    pub seed: u64,
    /// Number of gateway users (user 1 is root).
    #[arg(long, env = "LOGBUS_GEN_USERS", default_value_t = 200)]
    pub users: usize,
    /// Do not publish identity events.
    #[arg(long, env = "LOGBUS_GEN_NO_IDENTITY")]
    pub no_identity: bool,
}

const MODELS: &[&str] = &[
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o1",
    "o1-mini",
    "o3",
    "o3-mini",
    "o4-mini",
    "gpt-3.5-turbo",
    "gpt-4-turbo",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "dall-e-3",
    "whisper-1",
    "tts-1",
    "claude-3-5-sonnet-20241022",
    "claude-3-5-haiku-20241022",
    "claude-3-7-sonnet-20250219",
    "claude-sonnet-4-20250514",
    "claude-opus-4-20250514",
    "gemini-1.5-pro",
    "gemini-1.5-flash",
    "gemini-2.0-flash",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "deepseek-chat",
    "deepseek-reasoner",
    "qwen-max",
    "qwen-plus",
    "qwen-turbo",
    "qwen2.5-72b-instruct",
    "glm-4",
    "glm-4-flash",
    "moonshot-v1-8k",
    "moonshot-v1-32k",
    "doubao-pro-32k",
    "ernie-4.0-8k",
    "mistral-large-latest",
    "llama-3.1-405b-instruct",
];

const CHANNELS: &[(i64, &str)] = &[
    (1, "openai-primary"),
    (2, "openai-backup"),
    (3, "azure-eastus"),
    (4, "anthropic"),
    (5, "aws-bedrock"),
    (6, "google-vertex"),
    (7, "deepseek-官方"),
    (8, "阿里云百炼"),
    (9, "智谱"),
    (10, "月之暗面"),
    (11, "火山引擎"),
    (12, "openrouter"),
];

const GROUPS: &[&str] = &["default", "vip", "svip", "enterprise"];

/// A generated gateway user with its tokens.
#[derive(Debug, Clone)]
pub struct GenUser {
    pub id: i64,
    pub username: String,
    pub role: i32,
    pub group: String,
    pub access_token: String,
    /// (token id, name, key with `sk-`)
    pub tokens: Vec<(i64, String, String)>,
}

/// Deterministic event source.
pub struct Generator {
    rng: StdRng,
    deterministic_ids: bool,
    users: Vec<GenUser>,
    /// Cumulative Zipf-ish weights of users.
    cumulative: Vec<f64>,
}

fn secret(seed: u64, what: &str, len: usize) -> String {
    let digest = Sha256::digest(format!("logbus-gen/{seed}/{what}").as_bytes());
    let mut text = hex::encode_digest(&digest);
    while text.len() < len {
        let more = Sha256::digest(text.as_bytes());
        text.push_str(&hex::encode_digest(&more));
    }
    text.truncate(len);
    text
}

mod hex {
    pub fn encode_digest(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The access token of user 1 (root) for `seed`: what a demo prints so the API can be called.
pub fn admin_access_token(seed: u64) -> String {
    secret(seed, "user/1/access", 32)
}

impl Generator {
    pub fn new(seed: u64, users: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut next_token_id = 1;
        let users: Vec<GenUser> = (1..=users.max(1) as i64)
            .map(|id| {
                let role = match id {
                    1 => identity_codes::ROLE_ROOT,
                    2 | 3 => identity_codes::ROLE_ADMIN,
                    _ => identity_codes::ROLE_USER,
                };
                let token_count = rng.random_range(1..=3);
                let tokens = (0..token_count)
                    .map(|n| {
                        let token_id = next_token_id;
                        next_token_id += 1;
                        let name = ["default", "prod", "ci", "测试", "dev"][n % 5].to_owned();
                        let key = format!("sk-{}", secret(seed, &format!("token/{token_id}"), 48));
                        (token_id, name, key)
                    })
                    .collect();
                GenUser {
                    id,
                    username: if id == 1 {
                        "root".into()
                    } else {
                        format!("user{id}")
                    },
                    role,
                    group: GROUPS[rng.random_range(0..GROUPS.len())].to_owned(),
                    access_token: secret(seed, &format!("user/{id}/access"), 32),
                    tokens,
                }
            })
            .collect();
        let mut total = 0.0;
        let cumulative = (0..users.len())
            .map(|i| {
                total += 1.0 / ((i + 1) as f64).powf(1.1);
                total
            })
            .collect();
        Self {
            rng,
            deterministic_ids: false,
            users,
            cumulative,
        }
    }

    /// Event ids from the seeded generator too (by default they are random, so that running
    /// the generator twice with one seed publishes new events rather than duplicates).
    pub fn with_deterministic_ids(mut self, deterministic: bool) -> Self {
        self.deterministic_ids = deterministic;
        self
    }

    pub fn users(&self) -> &[GenUser] {
        &self.users
    }

    /// One identity event per user and per token (version 1).
    pub fn identity_events(&self) -> Vec<IdentityEvent> {
        let mut events = Vec::new();
        for user in &self.users {
            events.push(IdentityEvent::User(UserIdentity {
                id: user.id,
                username: user.username.clone(),
                role: user.role,
                status: identity_codes::STATUS_ENABLED,
                group: user.group.clone(),
                access_token_sha256: None,
                access_token: Some(Secret::new(user.access_token.clone())),
                version: 1,
            }));
            for (id, name, key) in &user.tokens {
                events.push(IdentityEvent::Token(TokenIdentity {
                    id: *id,
                    user_id: user.id,
                    name: name.clone(),
                    key_sha256: None,
                    key: Some(Secret::new(key.clone())),
                    status: identity_codes::STATUS_ENABLED,
                    version: 1,
                }));
            }
        }
        events
    }

    fn pick_user(&mut self) -> usize {
        let total = *self.cumulative.last().unwrap_or(&1.0);
        let x = self.rng.random::<f64>() * total;
        self.cumulative
            .partition_point(|c| *c < x)
            .min(self.users.len() - 1)
    }

    /// The next usage-log event, created at `created_at` (unix seconds).
    pub fn next_event(&mut self, created_at: i64) -> LogEvent {
        let picked = self.pick_user();
        let user = self.users[picked].clone();
        let rng = &mut self.rng;
        let (token_id, token_name, _) = user.tokens[rng.random_range(0..user.tokens.len())].clone();
        // Models: a few popular ones dominate.
        let model_index = ((rng.random::<f64>().powi(3)) * MODELS.len() as f64) as usize;
        let model = MODELS[model_index.min(MODELS.len() - 1)];
        let (channel_id, channel_name) = CHANNELS[rng.random_range(0..CHANNELS.len())];
        let roll = rng.random_range(0..1000);
        let log_type: i64 = match roll {
            0..=949 => 2,   // consume
            950..=979 => 5, // error
            980..=989 => 1, // top-up
            990..=994 => 6, // refund
            995..=997 => 7, // login
            _ => 4,         // system
        };
        let prompt_tokens: i64 = rng.random_range(10..8000);
        let completion_tokens: i64 = rng.random_range(0..4000);
        let model_ratio = [0.075, 0.15, 1.25, 2.5, 7.5, 15.0][rng.random_range(0..6)];
        let completion_ratio = [1.0, 3.0, 4.0, 5.0][rng.random_range(0..4)];
        let group_ratio = match user.group.as_str() {
            "vip" => 0.9,
            "svip" => 0.8,
            "enterprise" => 0.7,
            _ => 1.0,
        };
        let quota = if log_type == 2 {
            ((prompt_tokens as f64 + completion_tokens as f64 * completion_ratio)
                * model_ratio
                * group_ratio)
                .round() as i64
        } else if log_type == 1 {
            rng.random_range(1..100) * 500_000
        } else {
            0
        };
        let content = match log_type {
            2 if rng.random_bool(0.5) => format!(
                "模型倍率 {model_ratio:.2}，补全倍率 {completion_ratio:.2}，分组倍率 {group_ratio:.2}"
            ),
            2 => format!(
                "model ratio {model_ratio:.2}, completion ratio {completion_ratio:.2}, group ratio {group_ratio:.2}"
            ),
            5 => [
                "upstream error: rate limit exceeded (429)",
                "上游返回错误：服务暂时不可用",
                "context deadline exceeded",
                "invalid request: max_tokens is too large",
            ][rng.random_range(0..4)]
            .to_owned(),
            1 => format!("通过兑换码充值 ${}", quota / 500_000),
            6 => "refund for failed request / 请求失败退款".to_owned(),
            7 => "用户登录 user login".to_owned(),
            _ => "system notice: pricing updated".to_owned(),
        };
        let use_time = rng.random_range(0..60);
        let is_stream = rng.random_bool(0.7);
        let other = serde_json::json!({
            "model_ratio": model_ratio,
            "completion_ratio": completion_ratio,
            "group_ratio": group_ratio,
            "model_price": -1,
            "frt": rng.random_range(100..3000),
            "admin_info": {"use_channel": [channel_id.to_string()]},
        });
        let seeded_id = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
        let event_id = if self.deterministic_ids {
            seeded_id
        } else {
            Uuid::new_v4()
        };
        let ip = format!(
            "{}.{}.{}.{}",
            rng.random_range(1..224),
            rng.random_range(0..256),
            rng.random_range(0..256),
            rng.random_range(1..255)
        );
        LogEvent {
            event_id: Some(event_id),
            created_at,
            log_type,
            user_id: user.id,
            username: Some(user.username),
            token_id: Some(token_id),
            token_name: Some(token_name),
            model_name: Some(model.to_owned()),
            quota: Some(quota),
            prompt_tokens: Some(prompt_tokens),
            completion_tokens: Some(completion_tokens),
            use_time: Some(use_time),
            is_stream: Some(is_stream),
            channel_id: Some(channel_id),
            channel_name: Some(channel_name.to_owned()),
            group: Some(user.group),
            ip: Some(ip),
            request_id: Some(Uuid::from_u128(rng.random()).simple().to_string()),
            upstream_request_id: Some(format!("req_{:016x}", rng.random::<u64>())),
            content: Some(content),
            other: Some(other),
        }
    }
}

/// What `publish` sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenReport {
    pub log_events: u64,
    pub identity_events: u64,
    /// Sum of quota of the published log events.
    pub quota: i64,
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
                Err(_) => return Err(Error::Config("producer dropped a delivery".into())),
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
    let mut generator = Generator::new(config.seed, config.users);
    let mut report = GenReport::default();
    let mut in_flight = VecDeque::new();
    if !config.no_identity {
        for event in generator.identity_events() {
            let key = match &event {
                IdentityEvent::User(u) => format!("user/{}", u.id),
                IdentityEvent::Token(t) => format!("token/{}", t.id),
            };
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

/// The `logbus-gen` command line.
pub fn cli_main() -> std::process::ExitCode {
    crate::init_tracing();
    let config = GenConfig::parse();
    eprintln!(
        "logbus-gen: seed {}; root user id 1, access token {} (send as Authorization: Bearer)",
        config.seed,
        admin_access_token(config.seed)
    );
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("logbus-gen: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    match runtime.block_on(publish(&config, progress)) {
        Ok(report) => {
            eprintln!(
                "logbus-gen: published {} log events (sum quota {}) and {} identity events",
                report.log_events, report.quota, report.identity_events
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("logbus-gen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
