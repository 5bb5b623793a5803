//! The tail's flags (part of the API's one config, [`crate::config::Config`]).

const DEFAULT_TAIL_POLL_MS: u64 = 250;
const DEFAULT_TAIL_SETTLE_MS: u64 = 500;
const DEFAULT_TAIL_READ_ROWS: u64 = 5_000;
const DEFAULT_TAIL_MAX_STREAMS: usize = 1_000;
const DEFAULT_TAIL_MAX_STREAMS_PER_USER: usize = 4;
const DEFAULT_TAIL_RESUME_HORIZON_SECS: u64 = 3_600;
const DEFAULT_TAIL_HEARTBEAT_SECS: u64 = 15;
const DEFAULT_TAIL_STREAM_MAX_SECS: u64 = 300;

/// The live tail (`/api/log/tail`, `/api/log/self/tail`; docs/api.md, "Live tail").
#[derive(Clone, Debug, clap::Args)]
pub struct TailConfig {
    /// How often the shared reader asks ClickHouse for new rows while any tail is open, in
    /// milliseconds (at least 10).
    #[arg(long, env = "LOGBUS_TAIL_POLL_MS", default_value_t = DEFAULT_TAIL_POLL_MS)]
    pub tail_poll_ms: u64,
    /// How old (by ClickHouse's clock) a row must be before the tail sends it, in
    /// milliseconds: longer than any insert takes to commit, or a slow insert's rows are
    /// missed by live tails (never by the lists).
    #[arg(long, env = "LOGBUS_TAIL_SETTLE_MS", default_value_t = DEFAULT_TAIL_SETTLE_MS)]
    pub tail_settle_ms: u64,
    /// Most rows the shared reader reads per query; when a query fills it, the next follows
    /// at once.
    #[arg(long, env = "LOGBUS_TAIL_READ_ROWS", default_value_t = DEFAULT_TAIL_READ_ROWS)]
    pub tail_read_rows: u64,
    /// Most tails open at once in this process (then 429).
    #[arg(long, env = "LOGBUS_TAIL_MAX_STREAMS", default_value_t = DEFAULT_TAIL_MAX_STREAMS)]
    pub tail_max_streams: usize,
    /// Most tails one user may have open at once in this process (then 429).
    #[arg(long, env = "LOGBUS_TAIL_MAX_STREAMS_PER_USER", default_value_t = DEFAULT_TAIL_MAX_STREAMS_PER_USER)]
    pub tail_max_streams_per_user: usize,
    /// How far back a `Last-Event-ID` may point, in seconds; an older one is refused (400)
    /// and the client starts afresh.
    #[arg(long, env = "LOGBUS_TAIL_RESUME_HORIZON_SECS", default_value_t = DEFAULT_TAIL_RESUME_HORIZON_SECS)]
    pub tail_resume_horizon_secs: u64,
    /// Seconds between heartbeat comments on an idle stream (proxies close silent ones).
    #[arg(long, env = "LOGBUS_TAIL_HEARTBEAT_SECS", default_value_t = DEFAULT_TAIL_HEARTBEAT_SECS)]
    pub tail_heartbeat_secs: u64,
    /// A stream ends after this many seconds; the client reconnects with `Last-Event-ID`
    /// and misses nothing, and its credentials are checked again (a banned user's tail
    /// ends within this time).
    #[arg(long, env = "LOGBUS_TAIL_STREAM_MAX_SECS", default_value_t = DEFAULT_TAIL_STREAM_MAX_SECS)]
    pub tail_stream_max_secs: u64,
}

impl Default for TailConfig {
    fn default() -> Self {
        Self {
            tail_poll_ms: DEFAULT_TAIL_POLL_MS,
            tail_settle_ms: DEFAULT_TAIL_SETTLE_MS,
            tail_read_rows: DEFAULT_TAIL_READ_ROWS,
            tail_max_streams: DEFAULT_TAIL_MAX_STREAMS,
            tail_max_streams_per_user: DEFAULT_TAIL_MAX_STREAMS_PER_USER,
            tail_resume_horizon_secs: DEFAULT_TAIL_RESUME_HORIZON_SECS,
            tail_heartbeat_secs: DEFAULT_TAIL_HEARTBEAT_SECS,
            tail_stream_max_secs: DEFAULT_TAIL_STREAM_MAX_SECS,
        }
    }
}
