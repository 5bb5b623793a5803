/// The Kafka brokers and source topics: the same flags and environment variables for every
/// binary that consumes them (`logbus-ingest`) or publishes to them (`logbus-gen`, the bench).
#[derive(Clone, Debug, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers.
    #[arg(long, env = "LOGBUS_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic of usage-log events.
    #[arg(long, env = "LOGBUS_LOGS_TOPIC", default_value = "gateway.logs")]
    pub logs_topic: String,
    /// Topic of user/token identity events.
    #[arg(
        long,
        env = "LOGBUS_IDENTITY_TOPIC",
        default_value = "gateway.identity"
    )]
    pub identity_topic: String,
}
