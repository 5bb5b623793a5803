//! Tracing set-up, the same for every binary.

/// Installs a `tracing` subscriber on stderr reading `RUST_LOG` (default `info`, with
/// librdkafka's own chatter at `warn`); JSON lines when `LOGBUS_LOG_JSON=1`. A second call
/// (several services in one test process) keeps the first subscriber.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,rdkafka=warn".into());
    let json = std::env::var("LOGBUS_LOG_JSON").is_ok_and(|v| v == "1");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _already_installed = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// A subscriber for tests: `RUST_LOG` or `warn`, written through the test harness's capture so
/// that only a failing test's output is shown.
pub fn init_for_tests() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _already_installed = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
