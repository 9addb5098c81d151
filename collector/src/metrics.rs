//! The collector's own metrics (`drover_collector_*`).
use std::{
    collections::HashMap,
    sync::{atomic::AtomicU64, Arc, Mutex},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};

/// Label of per-container series: the container name (bounded by the containers on the host).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContainerLabel {
    /// Container name.
    pub container: String,
}

/// Label of the error counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    /// What failed: `docker_stream`, `docker_events`, `frame`, `kafka_send`, `kafka_stats`,
    /// `line_truncated` (a line too large for one Kafka message once encoded), `stats`.
    pub kind: String,
}

/// The kinds of [`CollectorMetrics::errors`].
pub const ERROR_KINDS: [&str; 11] = [
    "docker_events",
    "docker_out_of_order",
    "docker_replay",
    "docker_stream",
    "frame",
    "kafka_delivery",
    "kafka_producer_renewed",
    "kafka_send",
    "kafka_stats",
    "line_truncated",
    "stats",
];

/// Counters and gauges of one collector.
#[derive(Debug, Clone, Default)]
pub struct CollectorMetrics {
    /// Log records acknowledged by Kafka.
    pub lines: Counter,
    /// Bytes of log text acknowledged by Kafka.
    pub bytes: Counter,
    /// Log records Kafka refused for good (must stay 0).
    pub dropped: Counter,
    /// Times a follower waited because the producer queue was full.
    pub backpressure: Counter,
    /// Stats samples acknowledged.
    pub stats_samples: Counter,
    /// Reconnections to the Docker engine.
    pub reconnects: Counter,
    /// Containers whose logs are being followed.
    pub containers: Gauge,
    errors: Family<ErrorLabel, Counter>,
    lag: Family<ContainerLabel, Gauge<f64, AtomicU64>>,
    marks: Arc<Mutex<HashMap<String, (i64, i64)>>>,
}

impl CollectorMetrics {
    /// Register everything in `registry` (give it a `drover_collector` prefixed sub-registry).
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register(
            "lines",
            "Log records acknowledged by Kafka",
            m.lines.clone(),
        );
        registry.register_with_unit(
            "shipped",
            "Log text acknowledged by Kafka",
            Unit::Bytes,
            m.bytes.clone(),
        );
        registry.register(
            "lines_dropped",
            "Log records Kafka refused permanently (should stay 0)",
            m.dropped.clone(),
        );
        registry.register(
            "backpressure",
            "Times a follower waited because the producer queue was full (broker slow or down)",
            m.backpressure.clone(),
        );
        registry.register(
            "stats_samples",
            "Container stats samples acknowledged by Kafka",
            m.stats_samples.clone(),
        );
        registry.register(
            "docker_reconnects",
            "Reconnections to the Docker engine",
            m.reconnects.clone(),
        );
        registry.register(
            "containers",
            "Containers whose logs are followed",
            m.containers.clone(),
        );
        registry.register("errors", "Errors by kind", m.errors.clone());
        registry.register_with_unit(
            "lag",
            "Time between the newest line read from Docker and the newest line Kafka acknowledged, per container",
            Unit::Seconds,
            m.lag.clone(),
        );
        // Every kind starts at 0, so dashboards and alerts see the series from the start.
        for kind in ERROR_KINDS {
            m.errors(kind);
        }
        m
    }

    /// The error counter of one kind.
    pub fn errors(&self, kind: &str) -> Counter {
        self.errors
            .get_or_create(&ErrorLabel {
                kind: kind.to_string(),
            })
            .clone()
    }

    /// A line with this timestamp was read from Docker.
    pub fn read(&self, name: &str, ts: i64) {
        self.mark(name, Some(ts), None);
    }

    /// A line with this timestamp was acknowledged.
    pub fn delivered(&self, name: &str, ts: i64) {
        self.mark(name, None, Some(ts));
    }

    /// Drop a container's series.
    pub fn remove(&self, name: &str) {
        self.marks.lock().expect("marks lock").remove(name);
        self.lag.remove(&ContainerLabel {
            container: name.to_string(),
        });
    }

    fn mark(&self, name: &str, read: Option<i64>, delivered: Option<i64>) {
        let mut marks = self.marks.lock().expect("marks lock");
        let m = marks.entry(name.to_string()).or_insert((0, 0));
        if let Some(r) = read {
            m.0 = m.0.max(r);
        }
        if let Some(d) = delivered {
            m.1 = m.1.max(d);
        }
        let lag = if m.1 == 0 {
            0.0
        } else {
            (m.0 - m.1).max(0) as f64 / 1e9
        };
        self.lag
            .get_or_create(&ContainerLabel {
                container: name.to_string(),
            })
            .set(lag);
    }
}
