//! Reporting: every `report_interval`, one [`RequestStats`] per instance, per app and per
//! service (a Marathon group of instance groups; its record has `app` and `group` both set
//! to the group's ID), sent to a [`Sink`] — Kafka's `drover.metrics.v1` in production, keyed
//! by app ID, where the metrics store, the autoscaler and alertman read them.
use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use chrono::Utc;
use drover_schema::{MetricRecord, RequestStats};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::{sync::watch, time::Instant};

use crate::{
    metrics::{GatewayMetrics, ResultLabels},
    stats::{Snapshot, Tracker},
    Shared,
};

/// Where reports go.
pub trait Sink: Send + 'static {
    /// Send one interval's records (never blocks long: a slow destination queues or drops).
    fn send(&mut self, records: Vec<RequestStats>) -> impl Future<Output = ()> + Send;
}

/// What can go wrong setting up the Kafka sink.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The producer could not be made.
    #[error("cannot create the gateway's Kafka producer for {brokers}")]
    Producer {
        /// The bootstrap servers.
        brokers: String,
        /// Why.
        #[source]
        source: rdkafka::error::KafkaError,
    },
}

/// Reports as JSON [`MetricRecord::Request`] records on a Kafka topic, keyed by app ID.
pub struct KafkaSink {
    producer: FutureProducer,
    topic: String,
    metrics: GatewayMetrics,
}

impl std::fmt::Debug for KafkaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSink")
            .field("topic", &self.topic)
            .finish()
    }
}

impl KafkaSink {
    /// A sink producing to `topic` on `brokers`.
    pub fn new(brokers: &str, topic: &str, metrics: GatewayMetrics) -> Result<Self, ReportError> {
        let mut config = drover_kafka::config::producer(brokers, "drover-gateway");
        // A report older than a few intervals is of no use to the autoscaler.
        config.set("message.timeout.ms", "60000");
        let producer = config.create().map_err(|source| ReportError::Producer {
            brokers: brokers.to_string(),
            source,
        })?;
        Ok(Self {
            producer,
            topic: topic.to_string(),
            metrics,
        })
    }
}

impl Sink for KafkaSink {
    fn send(&mut self, records: Vec<RequestStats>) -> impl Future<Output = ()> + Send {
        let mut deliveries = Vec::with_capacity(records.len());
        for r in records {
            let key = r.app.clone();
            let value = drover_schema::encode(&MetricRecord::Request(r));
            match self
                .producer
                .send_result(FutureRecord::to(&self.topic).key(&key).payload(&value))
            {
                Ok(d) => deliveries.push(d),
                Err((e, _)) => {
                    tracing::warn!(error = %e, "cannot queue a request-stats record; dropped");
                    self.metrics
                        .reports
                        .get_or_create(&ResultLabels { result: "error" })
                        .inc();
                }
            }
        }
        let metrics = self.metrics.clone();
        // Deliveries are awaited aside, so a slow broker never delays the next report.
        tokio::spawn(async move {
            for d in deliveries {
                let result = match d.await {
                    Ok(Ok(_)) => "ok",
                    Ok(Err((e, _))) => {
                        tracing::warn!(error = %e, "a request-stats record was not delivered");
                        "error"
                    }
                    Err(_) => "error",
                };
                metrics
                    .reports
                    .get_or_create(&ResultLabels { result })
                    .inc();
            }
        });
        std::future::ready(())
    }
}

/// Report until `stop` turns true, then once more.
pub async fn run<S: Sink>(shared: Arc<Shared>, mut sink: S, mut stop: watch::Receiver<bool>) {
    let every = shared.cfg.report_interval.max(Duration::from_millis(100));
    let mut tick = tokio::time::interval_at(Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => sink.send(take(&shared)).await,
            _ = crate::server::stopped(&mut stop) => {
                sink.send(take(&shared)).await;
                return;
            }
        }
    }
}

/// The records of the interval that ends now. Retired instances, apps and services (gone
/// from the table) are reported this last time and forgotten.
pub fn take(shared: &Shared) -> Vec<RequestStats> {
    let now = Instant::now();
    let ts = Utc::now();
    // Which service each app belongs to, from the table in use.
    let table = shared.table.load_full();
    let mut service_of: HashMap<&str, &str> = HashMap::new();
    for r in &table.routes {
        if let Some(s) = &r.service {
            for g in &r.groups {
                service_of.insert(g.app.as_str(), s.as_str());
            }
        }
    }
    let mut reg = shared.registry.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = Vec::new();
    let group = |app: &str| service_of.get(app).map(|s| s.to_string());
    for e in reg.backends.values() {
        let b = &e.value;
        out.push(record(
            ts,
            &b.stats,
            now,
            &b.app,
            group(&b.app),
            Some(b.task.clone()),
            Some(b.node.clone()),
        ));
    }
    for (app, e) in &reg.apps {
        out.push(record(ts, &e.value, now, app, group(app), None, None));
    }
    for (service, e) in &reg.services {
        out.push(record(
            ts,
            &e.value,
            now,
            service,
            Some(service.clone()),
            None,
            None,
        ));
    }
    reg.backends.retain(|_, e| !e.retired);
    reg.apps.retain(|_, e| !e.retired);
    reg.services.retain(|_, e| !e.retired);
    out
}

fn record(
    ts: chrono::DateTime<Utc>,
    tracker: &Tracker,
    now: Instant,
    app: &str,
    group: Option<String>,
    instance: Option<String>,
    node: Option<String>,
) -> RequestStats {
    let Snapshot {
        interval_ms,
        in_flight,
        concurrency_mean,
        concurrency_max,
        requests,
        status,
        latency,
        bytes_in,
        bytes_out,
        gateway_errors,
    } = tracker.take(now);
    RequestStats {
        v: drover_schema::SCHEMA_VERSION,
        ts,
        interval_ms,
        app: app.to_string(),
        group,
        instance,
        node: node.filter(|n| !n.is_empty()),
        in_flight,
        requests,
        status,
        latency,
        concurrency_mean,
        concurrency_max,
        bytes_in,
        bytes_out,
        gateway_errors,
    }
}
