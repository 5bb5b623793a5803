//! Publishing to Kafka: sends that return a delivery to await, so that the checkpoint can
//! follow exactly what the broker has acknowledged.

use std::time::Duration;

use logbus_runtime::KafkaArgs;
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

use crate::Error;

/// The outcome of one send.
pub enum Sent {
    /// Queued; the broker's acknowledgement is awaited through the future.
    Queued(DeliveryFuture),
    /// Larger than the producer's `message.max.bytes`: the broker would refuse it; the caller
    /// logs and counts it.
    TooLarge,
}

impl std::fmt::Debug for Sent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sent::Queued(_) => "Queued",
            Sent::TooLarge => "TooLarge",
        })
    }
}

/// The producer of the bridge: idempotent (librdkafka's retries never duplicate or reorder a
/// partition's messages), LZ4-compressed, a delivery timeout of five minutes (after which the
/// bridge stops and a restart resumes from the checkpoint).
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl Publisher {
    pub fn new(kafka: &KafkaArgs) -> Result<Self, Error> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &kafka.brokers)
            .set("enable.idempotence", "true")
            .set("compression.type", "lz4")
            .set("linger.ms", "20")
            .set("message.timeout.ms", "300000")
            .set("queue.buffering.max.messages", "200000")
            .create()?;
        Ok(Self { producer })
    }

    /// Queues one message, waiting while the producer's queue is full.
    pub async fn send(&self, topic: &str, key: &str, payload: &[u8]) -> Result<Sent, Error> {
        loop {
            let record = FutureRecord::to(topic).key(key).payload(payload);
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(Sent::Queued(delivery)),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _)) => {
                    return Ok(Sent::TooLarge);
                }
                Err((error, _)) => return Err(Error::Kafka(error)),
            }
        }
    }

    /// Waits until the broker acknowledged every delivery; the first failure stops.
    pub async fn settle(deliveries: Vec<DeliveryFuture>) -> Result<(), Error> {
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => return Err(Error::Kafka(error)),
                Err(_) => return Err(Error::DeliveryLost),
            }
        }
        Ok(())
    }
}
