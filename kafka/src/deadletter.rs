//! Setting a malformed message aside: the same payload and key on the dead-letter topic, with
//! why and where from in headers, so any consumer's rejects look alike and can be replayed.
use rdkafka::{
    error::KafkaError,
    message::{BorrowedMessage, Header, OwnedHeaders},
    producer::{BaseRecord, DefaultProducerContext, ThreadedProducer},
    Message,
};

/// Header with the stable reason (e.g. `invalid_json`, `unsupported_version`).
pub const ERROR_HEADER: &str = "drover-error";
/// Header with the human-readable detail.
pub const DETAIL_HEADER: &str = "drover-detail";
/// Header with `topic/partition/offset` of the original message.
pub const SOURCE_HEADER: &str = "drover-source";

/// Queues `msg` on `topic` with the reason headers. Delivery is confirmed by flushing the
/// producer (callers flush before committing offsets past the message).
pub fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    msg: &BorrowedMessage<'_>,
    reason: &str,
    detail: &str,
) -> Result<(), KafkaError> {
    producer
        .send(record(topic, msg, reason, detail))
        .map_err(|(e, _)| e)
}

/// The dead-letter record of `msg`, for a producer the caller polls itself (a `BaseProducer`
/// polled from a consumer's loop needs no thread of its own).
pub fn record<'a>(
    topic: &'a str,
    msg: &'a BorrowedMessage<'_>,
    reason: &str,
    detail: &str,
) -> BaseRecord<'a, [u8], [u8]> {
    let source = format!("{}/{}/{}", msg.topic(), msg.partition(), msg.offset());
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: ERROR_HEADER,
            value: Some(reason),
        })
        .insert(Header {
            key: DETAIL_HEADER,
            value: Some(detail),
        })
        .insert(Header {
            key: SOURCE_HEADER,
            value: Some(&source),
        });
    BaseRecord::to(topic)
        .payload(msg.payload().unwrap_or_default())
        .key(msg.key().unwrap_or_default())
        .headers(headers)
}
