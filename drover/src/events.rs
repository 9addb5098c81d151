//! Publishing a component's own events (Alertman's, the autoscaler's) on `drover.events.v1`.
use std::time::Duration;

use anyhow::Context;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::{mpsc, watch};

/// Publishes the events that arrive on `rx` on `drover.events.v1` of `brokers`, keyed by app
/// (else node, else kind), until `rx` closes or `stop` turns true. A failed send is logged
/// and dropped (events are a record, not a queue of work).
pub fn spawn_publisher(
    brokers: &str,
    client_id: &str,
    mut rx: mpsc::UnboundedReceiver<drover_schema::Event>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let producer: FutureProducer = drover_kafka::config::producer(brokers, client_id)
        .set("enable.idempotence", "false")
        .create()
        .with_context(|| format!("cannot create the Kafka producer of {client_id}"))?;
    Ok(tokio::spawn(async move {
        loop {
            let e = tokio::select! {
                e = rx.recv() => match e { Some(e) => e, None => break },
                _ = stop.wait_for(|s| *s) => break,
            };
            let key = e
                .app
                .clone()
                .or_else(|| e.node.clone())
                .unwrap_or_else(|| e.kind.clone());
            let payload = drover_schema::encode(&e);
            let record = FutureRecord::to(drover_schema::topics::EVENTS)
                .key(&key)
                .payload(&payload);
            if let Err((err, _)) = producer.send(record, Duration::from_secs(5)).await {
                tracing::warn!(error = %err, kind = %e.kind, source = ?e.source, "an event was not published");
            }
        }
    }))
}
