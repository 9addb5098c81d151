//! The master's events on Kafka: every role that runs a master (`drover up`, `drover master
//! --kafka`) publishes them on `drover.events.v1` as [`drover_schema::Event`] records, keyed
//! by app (else node) so that each app's events keep their order.
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::watch;

use crate::{events, master::Master};

/// Publishes `master`'s events to `brokers` until `stop` turns true (then waits up to 5 s for
/// what is queued). Fails only when the producer cannot be created (bad settings). A broker
/// that is away is retried by the producer; an event the broker refuses (tansu answers the
/// requests in flight with an error when it stops, and refuses an idempotent producer it knew
/// after it restarts, hence a producer that is not idempotent) is sent again, five times at
/// most over about 15 s, then logged as lost. At least once: consumers de-duplicate by the
/// event's `id`.
pub fn spawn(
    master: &Master,
    brokers: &str,
    mut stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, rdkafka::error::KafkaError> {
    let producer: FutureProducer = drover_kafka::config::producer(brokers, "drover-scheduler")
        .set("enable.idempotence", "false")
        .create()?;
    let mut rx = master.subscribe();
    Ok(tokio::spawn(async move {
        loop {
            let e = tokio::select! {
                r = rx.recv() => match r {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "scheduler events not published: the publisher fell behind");
                        continue;
                    }
                    Err(_) => break,
                },
                // wait_for, not changed: a stop seen during a retry below is still seen here.
                _ = stop.wait_for(|s| *s) => break,
            };
            let Some(event) = events::to_schema_event(&e) else {
                continue;
            };
            let key = events::key(&event);
            let payload = drover_schema::encode(&event);
            let mut backoff = Duration::from_millis(500);
            for attempt in 1..=5 {
                let record = FutureRecord::to(drover_schema::topics::EVENTS)
                    .key(&key)
                    .payload(&payload);
                match producer.send(record, Duration::from_secs(5)).await {
                    Ok(_) => break,
                    Err((e, _)) if attempt < 5 => {
                        tracing::debug!(error = %e, kind = %event.kind, attempt, "a scheduler event was refused; sending it again");
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stop.wait_for(|s| *s) => break,
                        }
                        backoff *= 2;
                    }
                    Err((e, _)) => {
                        tracing::warn!(error = %e, kind = %event.kind, id = %event.id, "cannot publish a scheduler event: lost");
                    }
                }
            }
        }
        let _ = producer.flush(Duration::from_secs(5));
    }))
}
